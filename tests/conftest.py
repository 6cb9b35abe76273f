"""Suite-wide test settings: hypothesis profiles and the hazard marker's id check.

Profiles (DESIGN.md section 4), chosen with HYPOTHESIS_PROFILE:
- ``dev`` (default): quick, randomized, for the edit-test loop;
- ``ci``: more examples, derandomized so a CI failure reproduces, no deadline because a
  loaded 2-core CI machine makes timing meaningless.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

HAZARD_ID = re.compile(r"^(H([1-9]|1[0-7])|C[1-5])$")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hazard marker must name a hazard of DOMAIN.md section 3, or the test is an error."""
    for item in items:
        for marker in item.iter_markers("hazard"):
            ids = marker.args
            if not ids or not all(isinstance(i, str) and HAZARD_ID.match(i) for i in ids):
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.hazard needs DOMAIN.md ids (H1-H17, C1-C5), "
                    f"got {ids!r}"
                )
