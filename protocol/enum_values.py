"""Enum values as both codec fast paths convert them (protocol/fast_codec.py for the
fixed-size messages, protocol/variable_plans.py for the variable ones): a wire integer to
its member, a bitmap to a set of members and back."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

__all__ = ["enum_set_converter", "enum_table", "member_bits"]


def enum_table(enum: type[IntEnum]) -> dict[int, IntEnum]:
    """wire value -> member."""
    return {member.value: member for member in enum}


def enum_set_converter(enum: type[IntEnum]) -> Callable[[int], frozenset[IntEnum] | None]:
    """bitmap -> frozenset of members, None if a bit names no member (cached per bitmap)."""
    known = 0
    for member in enum:
        known |= 1 << member.value
    cache: dict[int, frozenset[IntEnum]] = {}

    def convert(bitmap: int) -> frozenset[IntEnum] | None:
        found = cache.get(bitmap)
        if found is not None:
            return found
        if bitmap & ~known:
            return None
        found = frozenset(m for m in enum if bitmap >> m.value & 1)
        cache[bitmap] = found
        return found

    return convert


def member_bits(members: frozenset[IntEnum]) -> int:
    """The bitmap of a set of members."""
    total = 0
    for member in members:
        total |= 1 << member.value
    return total
