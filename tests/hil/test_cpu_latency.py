"""The CPU wake-up latency request behind ``pumpemu serve --low-latency`` (hil/cpu_latency.py).

The kernel's device is replaced by a plain file here: what matters is what is written, that
the descriptor stays open for the whole block (the request lasts as long as it does), and
the errors a user meets. tests/hil/e2e/test_low_latency_e2e.py uses the real device.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil import cpu_latency
from hil.cli import main
from hil.cpu_latency import CpuLatencyError, CpuLatencyRequest


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("max_us", [0, 20, 2**31 - 1], ids=["zero", "twenty", "largest"])
def test_the_bound_is_written_as_a_native_int32_and_held_until_the_end(
    tmp_path: Path, max_us: int
) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    before = open_fds()
    with CpuLatencyRequest(max_us, device) as request:
        held_inside = request.held
        assert device.read_bytes() == struct.pack("=i", max_us)
        assert len(open_fds() - before) == 1  # the request is this open descriptor
    assert held_inside
    assert not request.held
    assert open_fds() == before
    request.release()  # again: nothing to do


def test_a_machine_without_the_device_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CpuLatencyError, match=r"does not exist: .* Linux PM QoS device"):
        CpuLatencyRequest(0, tmp_path / "missing").acquire()


def test_no_permission_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(CpuLatencyError, match="run as root, or let your group write it"):
        CpuLatencyRequest(0, tmp_path / "dev").acquire()


@pytest.mark.parametrize("max_us", [-1, 2**31], ids=["negative", "too-large"])
def test_a_bound_outside_int32_is_refused(max_us: int) -> None:
    with pytest.raises(ValueError, match="max_us"):
        CpuLatencyRequest(max_us)


def test_serve_low_latency_without_the_device_exits_2_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hil.key_files import write_key_file  # noqa: PLC0415
    from protocol.keys import generate_keys  # noqa: PLC0415

    keys = tmp_path / "pump.keys"
    write_key_file(keys, generate_keys("PE-000009", os.urandom(64)))
    monkeypatch.setattr(cpu_latency, "PM_QOS_DEVICE", tmp_path / "missing")
    result = CliRunner().invoke(main, ["serve", "--pty", "--keys", str(keys), "--low-latency"])
    assert result.exit_code == 2
    assert "--low-latency:" in result.output
    assert "does not exist" in result.output
    assert "Traceback" not in result.output
