"""The documented vectors as fuzz material (never a second parser of the docs).

The frames and messages come from docs/protocol.md section 13, read with the parser of
tests/protocol/test_docs_vectors.py, and from hil/examples/session.hex, read with
``pumpemu decode``'s own reader.
"""

from __future__ import annotations

from hil.decode_command import read_source
from protocol import codec
from protocol.messages import Message, Opcode
from tests.protocol.test_docs_vectors import VECTORS
from tests.protocol_doc import evaluate

__all__ = ["example_stream", "request_payloads", "vector_frames", "vector_messages"]


def vector_frames() -> dict[str, bytes]:
    """Every documented vector's whole frame, by vector name."""
    return {v["name"]: bytes.fromhex(v["hex"].replace(" ", "")) for v in VECTORS}


def vector_messages() -> dict[str, Message]:
    """Every documented vector's message, by vector name."""
    messages: dict[str, Message] = {}
    for vector in VECTORS:
        message = evaluate(vector["message"])
        assert isinstance(message, Message), vector["name"]
        messages[vector["name"]] = message
    return messages


def request_payloads() -> dict[Opcode, bytes]:
    """A valid plaintext payload for every request opcode, from the first vector of each."""
    payloads: dict[Opcode, bytes] = {}
    for message in vector_messages().values():
        opcode, payload = codec.encode_payload(message)
        if not opcode.is_reply:
            payloads.setdefault(opcode, payload)
    return payloads


def example_stream() -> bytes:
    """hil/examples/session.hex: a clinician session with noise between the frames."""
    return read_source((), example=True)[1]
