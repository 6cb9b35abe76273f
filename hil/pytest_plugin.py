"""pumpemu's pytest plugin: the ``hazard`` marker, checked, and selection by hazard.

Installed with pumpemu (the ``pytest11`` entry point ``pumpemu``), so any project's tests
can use it, pumpemu's own included:

- ``@pytest.mark.hazard("H5", ...)`` says a test demonstrates the pump-side behaviour for
  those hazards of docs/hazards.md. An ID that is not in the catalogue (hil/hazards.py) is
  a usage error at collection, so a typo never hides a test from its hazard.
- ``--hazard H5`` (repeatable) keeps exactly the tests marked with one of the IDs given and
  deselects the rest. ``-k H5`` works too: each hazard ID is a keyword of the tests marked
  with it. ``-k`` matches substrings, so ``-k H1`` also keeps H10-H17; ``--hazard H1``
  does not.
"""

from __future__ import annotations

import pytest

from hil.hazards import HAZARDS, is_hazard_id

__all__ = ["hazard_ids"]

MARKER_HELP = (
    "hazard(*ids): the test demonstrates the pump-side behaviour for hazards of "
    "docs/hazards.md (H1-H17, C1-C5); select with --hazard ID"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pumpemu")
    group.addoption(
        "--hazard",
        action="append",
        default=[],
        metavar="ID",
        help="run only the tests marked @pytest.mark.hazard with this ID (H1-H17, C1-C5); "
        "repeat for several",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    unknown = [h for h in config.getoption("hazard") if not is_hazard_id(h)]
    if unknown:
        raise pytest.UsageError(
            f"--hazard {', '.join(unknown)}: not a hazard ID (known: {', '.join(HAZARDS)})"
        )


def hazard_ids(item: pytest.Item) -> tuple[str, ...]:
    """Every hazard ID the item's markers name, in marker order, each once."""
    ids: list[str] = []
    for marker in item.iter_markers("hazard"):
        for value in marker.args:
            if value not in ids:
                ids.append(value)
    return tuple(ids)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in item.iter_markers("hazard"):
            if not marker.args or not all(is_hazard_id(i) for i in marker.args):
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.hazard needs IDs of docs/hazards.md "
                    f"(H1-H17, C1-C5), got {marker.args!r}"
                )
        item.extra_keyword_matches.update(hazard_ids(item))
    wanted = set(config.getoption("hazard"))
    if not wanted:
        return
    keep = [item for item in items if wanted & set(hazard_ids(item))]
    dropped = [item for item in items if not wanted & set(hazard_ids(item))]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
