"""The control API: parsing, fault mapping, the JSON-lines server and client, and the CLI."""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import (
    BatteryDrain,
    CapInjection,
    CatheterDisconnect,
    CatheterErosion,
    CatheterKink,
    CatheterLeak,
    CatheterMigration,
    CatheterOcclusion,
    CatheterRepair,
    InflammatoryMass,
    MagnetExposure,
    MechanicalBias,
    MemoryCorruption,
    MotorRepair,
    MotorStall,
    PocketFill,
    PumpFlip,
    PumpReseat,
    Reset,
)
from emulator.pump import Pump
from hil import quantities as q
from hil.cli import main
from hil.clock import ScaledClock
from hil.control import (
    FAULTS,
    ControlClient,
    ControlError,
    ControlServer,
    build_fault,
    parse_control_address,
)
from hil.errors import UsageError
from hil.links import memory_pair
from hil.serve import PumpServer
from protocol.keys import generate_keys
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat

KEYS = generate_keys("PE-000007", bytes(range(64)))
HOUR_MS = 3_600_000


def running_pump() -> Pump:
    pump = Pump("peristaltic-20")
    rx = Prescription(
        drug_name="morphine",
        concentration_ug_per_ml=1_000,
        mode=InfusionMode.CONTINUOUS,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, 1_000_000),),
        patient_bolus=None,
        low_reservoir_threshold_nl=2_000_000,
    )
    assert pump.program(rx, command_id=1).__class__.__name__ == "Accepted"
    return pump


def silent(_line: str) -> None:
    """A log that drops lines: these tests read state, not the log."""


@pytest.fixture
def pump_server() -> Iterator[PumpServer]:
    pump_end, _programmer_end = memory_pair()
    device = PumpDevice(running_pump(), KEYS, secrets.token_bytes)
    with PumpServer(device, pump_end, ManualClock(), log=silent) as server:
        yield server


@pytest.fixture
def control(pump_server: PumpServer, tmp_path: Path) -> Iterator[ControlServer]:
    with ControlServer(pump_server, f"unix:{tmp_path / 'c.sock'}", log=silent) as server:
        yield server


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("30d", 30 * 86_400_000),
        ("6h", 6 * HOUR_MS),
        ("90m", 90 * 60_000),
        ("45s", 45_000),
        ("250ms", 250),
        ("1d12h", 36 * HOUR_MS),
        ("2w", 14 * 86_400_000),
        ("90", 90_000),
        (" 1H 30M ", 90 * 60_000),
        ("1.5h", 90 * 60_000),
        ("2 min", 120_000),
        ("30m1h", 90 * 60_000),
        ("1h1h", 2 * HOUR_MS),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_advance_takes_what_it_always_took_and_the_one_grammar(text: str, ms: int) -> None:
    # docs/serve.md: the advance op's 'duration' is the one grammar, a bare number seconds.
    assert q.parse_duration_ms(text, bare="s") == ms


@pytest.mark.parametrize("bad", ["", "-3s", "3x", "h", "30d junk", True, -1])
def test_advance_refuses_nonsense(bad: str | int) -> None:
    with pytest.raises(ValueError, match="duration"):
        q.parse_duration_ms(bad, bare="s")  # type: ignore[arg-type]


def test_parse_control_address() -> None:
    assert str(parse_control_address("unix:/tmp/p.sock")) == "unix:/tmp/p.sock"
    assert str(parse_control_address("127.0.0.1:7001")) == "127.0.0.1:7001"
    assert str(parse_control_address("[::1]:7001")) == "[::1]:7001"
    with pytest.raises(UsageError, match="only loopback"):
        parse_control_address("0.0.0.0:7001")
    with pytest.raises(UsageError, match="needs a path"):
        parse_control_address("unix:")


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "fault"),
    [
        ("stall", {}, MotorStall()),
        ("stall", {"recover_after_s": 3600}, MotorStall(3600)),
        ("occlusion", {}, CatheterOcclusion()),
        ("leak", {"ppm": 250_000}, CatheterLeak(250_000)),
        ("disconnect", {}, CatheterDisconnect()),
        ("repair", {"part": "motor"}, MotorRepair()),
        ("repair", {"part": "catheter"}, CatheterRepair()),
        ("magnet", {"scan_s": 1800, "recovery_s": 7200}, MagnetExposure(1800, 7200)),
        ("mri", {"scan_s": 600}, MagnetExposure(600, 0)),
        ("battery-drain", {"nah": 5_000_000}, BatteryDrain(5_000_000)),
        ("pocket-fill", {"volume_nl": 1_000_000}, PocketFill(1_000_000)),
        ("bias", {"ppm": -20_000}, MechanicalBias(-20_000)),
        ("reset", {}, Reset()),
        ("memory-corruption", {}, MemoryCorruption(0)),
        ("memory-corruption", {"bit": 77}, MemoryCorruption(77)),
        ("occlusion", {"delivered_ppm": 250_000}, CatheterOcclusion(250_000)),
        ("inflammatory-mass", {"grow_s": 3_628_800}, InflammatoryMass(3_628_800)),
        (
            "inflammatory-mass",
            {"grow_s": 86_400, "delivered_ppm": 100_000},
            InflammatoryMass(86_400, 100_000),
        ),
        ("kink", {"period_s": 86_400, "closed_s": 43_200}, CatheterKink(86_400, 43_200)),
        ("migration", {}, CatheterMigration()),
        ("erosion", {"ppm": 100_000}, CatheterErosion(100_000)),
        ("flip", {}, PumpFlip()),
        ("reseat", {}, PumpReseat()),
        (
            "cap-inject",
            {"volume_nl": 2_000_000, "concentration_ug_per_ml": 10_000},
            CapInjection(2_000_000, 10_000),
        ),
        (
            "pocket-fill",
            {"volume_nl": 1_000_000, "concentration_ug_per_ml": 25_000},
            PocketFill(1_000_000, 25_000),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_fault_name_maps_to_its_fault(
    name: str, params: dict[str, object], fault: object
) -> None:
    assert build_fault(name, params) == fault


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("melt", {}, "unknown fault 'melt'"),
        ("leak", {}, "missing parameter 'ppm'"),
        ("leak", {"ppm": 0}, "ppm must be 1..1000000"),
        ("leak", {"ppm": "lots"}, "'lots' is not a fraction"),
        ("leak", {"ppm": 0.5}, "must be an integer or a string with its unit"),
        ("leak", {"ppm": 5, "extra": 1}, "takes no parameter 'extra'"),
        ("repair", {"part": "valve"}, "'motor' or 'catheter'"),
        ("stall", {"recover_after_s": 0}, "recover_after_s must be 1..3153600000"),
        ("stall", {"recover_after_s": 10**30}, "recover_after_s must be 1..3153600000"),
        ("battery-drain", {"nah": 10**13}, "nah must be 0..1000000000000"),
        ("pocket-fill", {"volume_nl": 10**10}, "volume_nl must be 0..1000000000"),
        ("kink", {"period_s": 60, "closed_s": 61}, "closed_s must be 0..60"),
        ("inflammatory-mass", {"grow_s": 0}, "grow_s must be 1..315360000"),
        ("occlusion", {"delivered_ppm": 1_000_000}, "delivered_ppm must be 0..999999"),
        ("cap-inject", {"volume_nl": 1}, "missing parameter 'concentration_ug_per_ml'"),
        ("cap-inject", {"volume_nl": -1, "concentration_ug_per_ml": 1}, "volume_nl must be 0.."),
        ("inflammatory-mass", {"grow_s": 10**30}, "grow_s must be 1..315360000"),
        ("kink", {"period_s": 10**30, "closed_s": 1}, "period_s must be 1..315360000"),
        (
            "pocket-fill",
            {"volume_nl": 1, "concentration_ug_per_ml": 10**7},
            "concentration_ug_per_ml must be 0..1000000",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_faults_are_refused_clearly(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_fault(name, params)


# -- the server, without sockets ----------------------------------------------------------------


@pytest.mark.e2e
def test_requests_are_answered_with_ok_or_a_clear_error(control: ControlServer) -> None:
    assert control.handle({"op": "ping"}) == {"ok": True, "pong": True}
    unknown = control.handle({"op": "explode"})
    assert unknown["ok"] is False
    assert "unknown op 'explode'" in unknown["error"]
    assert control.handle_line(b"{not json")["ok"] is False
    assert "JSON object" in control.handle_line(b"[1, 2]")["error"]
    both = control.handle({"op": "advance", "seconds": 1, "duration": "1s"})
    assert "exactly one" in both["error"]
    assert control.handle({"op": "advance", "ms": -5})["ok"] is False
    huge = control.handle({"op": "advance", "duration": "99999999999999999999d"})
    assert huge["ok"] is False
    assert "longer than 100 years" in huge["error"]
    huge_ms = control.handle({"op": "advance", "ms": 10**20})
    assert "at most 36500 days" in huge_ms["error"]
    assert control.handle({"op": "ping"})["ok"] is True  # nothing held the pump meanwhile
    assert control.handle({"op": "log", "since_seq": -1})["ok"] is False
    assert control.handle({"op": "fault"})["ok"] is False
    faults = control.handle({"op": "faults"})
    assert set(faults["faults"]) == set(FAULTS)
    assert faults["faults"]["leak"]["params"]["ppm"]["required"] is True


def test_advance_on_a_real_time_clock_is_refused_through_the_api(tmp_path: Path) -> None:
    pump_end, _ = memory_pair()
    device = PumpDevice(Pump("peristaltic-20"), KEYS, secrets.token_bytes)
    server = PumpServer(device, pump_end, ScaledClock(60, source=lambda: 0), log=silent)
    control = ControlServer(server, f"unix:{tmp_path / 'c.sock'}")
    try:
        answer = control.handle({"op": "advance", "duration": "1h"})
    finally:
        control.stop()
    assert answer["ok"] is False
    assert "manual clock" in answer["error"]


# -- over sockets -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_fault_advance_truth_and_log_over_a_unix_socket(control: ControlServer) -> None:
    with ControlClient(control.address) as client:
        info = client.info()
        assert (info["serial"], info["clock"], info["now_ms"]) == ("PE-000007", "manual", 0)
        injected = client.fault("stall")
        assert injected["applied"] == {"type": "MotorStall", "recover_after_s": None}
        before = client.truth()
        assert before["plant"]["motor"] == "STALLED"
        assert before["firmware"]["motor_stall_detected"] is False
        advanced = client.advance("6h")
        assert (advanced["advanced_ms"], advanced["now_ms"]) == (6 * HOUR_MS, 6 * HOUR_MS)
        after = client.truth()
        assert after["firmware"]["motor_stall_detected"] is True
        assert "MOTOR_STALL" in [a["kind"] for a in after["firmware"]["alarms"]]
        rows = {row["quantity"]: row for row in after["compare"]}
        assert rows["motor"]["firmware"] == "stall detected"
        assert rows["catheter"]["firmware"] is None  # the firmware cannot sense it
        assert after["plant"]["balance_nl"] == 0
        log = client.log(since_seq=1)
        kinds = [entry["kind"] for entry in log["entries"]]
        assert "MOTOR_STALL" in kinds
        assert log["next_seq"] > log["entries"][-1]["seq"]
        assert len(client.log(limit=1)["entries"]) == 1
        with pytest.raises(ControlError, match="missing parameter 'ppm'"):
            client.fault("leak")


@pytest.mark.e2e
def test_a_leak_shows_in_plant_truth_but_not_in_the_firmware_view(control: ControlServer) -> None:
    with ControlClient(control.address) as client:
        client.fault("leak", ppm=500_000)
        client.advance("1d")
        rows = {row["quantity"]: row for row in client.truth()["compare"]}
    # 1 mL/day pumped, half of it into tissue: the firmware counts all of it as delivered.
    assert rows["pumped since power-on"]["firmware"] == 1_000_000
    assert rows["lost (leak, pocket)"]["plant"] > 0
    assert rows["lost (leak, pocket)"]["firmware"] is None
    assert rows["catheter"]["plant"] == "LEAKING"


@pytest.mark.e2e
def test_cap_operations_through_the_api(control: ControlServer) -> None:
    """H2 and patency: a CAP aspiration of a patent catheter returns its 286,000 nL of
    1 mg/mL and then CSF; a CAP injection of 1 mL of 10 mg/mL pushes the catheter's
    (now CSF) contents and 714,000 nL of itself out of the tip: 7.14 mg into the CSF at
    once, the firmware unaware. Blocked: nothing returns. Bounded input is refused."""
    with ControlClient(control.address) as client:
        got = client.cap_aspirate(1_000_000)
        assert (got["result"], got["drug_nl"], got["drug_pg"], got["csf_nl"]) == (
            "CSF",
            286_000,
            286_000_000,
            714_000,
        )
        before = client.truth()
        injected = client.cap_inject(1_000_000, 10_000)
        assert (injected["volume_nl"], injected["mass_pg"]) == (1_000_000, 10_000_000_000)
        after = client.truth()
        rows = {row["quantity"]: row for row in after["compare"]}
        assert rows["drug into the CSF"]["firmware"] is None
        assert after["plant"]["delivered_pg"] - before["plant"]["delivered_pg"] == 7_140_000_000
        assert after["firmware"] == before["firmware"]
        assert after["plant"]["balance_pg"] == 0
        client.fault("occlusion")
        assert client.cap_aspirate(1_000)["result"] == "NO_FLOW"
        with pytest.raises(ControlError, match="volume_nl"):
            client.cap_aspirate(-1)
        with pytest.raises(ControlError, match="volume_nl"):
            client.cap_inject(10**30, 1)
        with pytest.raises(ControlError, match="concentration_ug_per_ml"):
            client.cap_inject(1, 10**12)
        with pytest.raises(ControlError, match="takes no field 'extra'"):
            client.request("cap_aspirate", volume_nl=1, extra=2)
        # A string is read in the one grammar (docs/quantities.md); a wrong one is refused.
        assert client.request("cap_aspirate", volume_nl="1 uL")["drug_nl"] == 0
        with pytest.raises(ControlError, match="is not a volume"):
            client.request("cap_aspirate", volume_nl="1 parsec")
        with pytest.raises(ControlError, match="must be an integer"):
            client.request("cap_aspirate", volume_nl=1.5)


@pytest.mark.e2e
def test_cap_aspirate_command(control: ControlServer) -> None:
    env = {"PUMPEMU_CONTROL": control.address}
    out = CliRunner().invoke(main, ["fault", "cap-aspirate", "--volume-nl", "500000"], env=env)
    assert out.exit_code == 0, out.output
    assert "CSF; drug solution 0.286 mL (286 µg), CSF 0.214 mL" in out.output
    out = CliRunner().invoke(
        main,
        ["fault", "cap-inject", "--volume-nl", "1000", "--concentration-ug-per-ml", "5"],
        env=env,
    )
    assert out.exit_code == 0, out.output
    assert "CapInjection" in out.output
    listing = CliRunner().invoke(main, ["fault", "list"])
    assert "cap-aspirate" in listing.output
    assert "inflammatory-mass" in listing.output


@pytest.mark.e2e
def test_tcp_control_on_loopback_with_an_ephemeral_port(pump_server: PumpServer) -> None:
    with ControlServer(pump_server, "127.0.0.1:0") as control:
        host, port = control.address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0
        with ControlClient(control.address, token=control.token) as client:
            assert client.ping()["pong"] is True


@pytest.mark.e2e
def test_unix_socket_is_private_and_stale_sockets_are_replaced(
    pump_server: PumpServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: left by a process that died
    with ControlServer(pump_server, f"unix:{path}"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(UsageError, match="in use"):
            ControlServer(pump_server, f"unix:{path}")
    assert not path.exists()
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(UsageError, match="not a socket"):
        ControlServer(pump_server, f"unix:{regular}")


@pytest.mark.e2e
def test_an_overlong_request_line_is_refused(control: ControlServer, tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(tmp_path / "c.sock"))
    with sock, sock.makefile("rb") as reader:
        sock.sendall(b"x" * (70 * 1024) + b"\n")
        answer = json.loads(reader.readline())
    assert answer == {"ok": False, "error": "request line too long"}


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"[" * 30_000 + b"\n", "nested too deeply"),
        (b'{"op": ' * 100 + b"\n", "nested too deeply"),
        (b"\xff\xfe\n", "not UTF-8"),
        (b"[1, 2]\n", "a JSON object"),
        (b"nonsense\n", "not JSON"),
    ],
    ids=["30000-brackets", "nested-objects", "not-utf8", "not-an-object", "not-json"],
)
def test_a_hostile_request_line_gets_an_error_reply_and_the_connection_lives(
    control: ControlServer, tmp_path: Path, line: bytes, words: str
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(tmp_path / "c.sock"))
    with sock, sock.makefile("rb") as reader:
        sock.sendall(line)
        answer = json.loads(reader.readline())
        assert answer["ok"] is False
        assert words in answer["error"]
        sock.sendall(b'{"op": "ping"}\n')  # the same connection still serves
        assert json.loads(reader.readline())["ok"] is True


def test_client_reports_an_unreachable_api(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="cannot reach the control API"):
        ControlClient(f"unix:{tmp_path / 'nobody.sock'}")


# -- the commands -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_fault_time_and_truth_commands(control: ControlServer) -> None:
    runner = CliRunner()
    env = {"PUMPEMU_CONTROL": control.address}
    out = runner.invoke(main, ["fault", "stall", "--recover-after-s", "7200"], env=env)
    assert out.exit_code == 0, out.output
    # One display style (docs/quantities.md): durations in words, instants as the pump
    # clock in ISO 8601 with the elapsed emulator time.
    assert "injected stall (MotorStall recover-after 2 h) at 1970-01-01T00:00:00 (+0d 00:00)" in (
        out.output
    )
    out = runner.invoke(main, ["time", "advance", "1h"], env=env)
    assert out.exit_code == 0, out.output
    assert "advanced 1h (3,600,000 ms): now 1970-01-01T01:00:00 (+0d 01:00)" in out.output
    out = runner.invoke(main, ["time", "show", "--control", control.address])
    assert "now 1970-01-01T01:00:00 (+0d 01:00), clock manual" in out.output
    out = runner.invoke(main, ["truth"], env=env)
    assert out.exit_code == 0, out.output
    assert "therapy state SUSPENDED_BY_ALARM; alarms: MOTOR_STALL" in out.output
    motor = next(line for line in out.output.splitlines() if line.startswith("motor"))
    assert motor.split()[1:] == ["stall", "detected", "STALLED"]
    out = runner.invoke(main, ["truth", "--json"], env=env)
    assert json.loads(out.output)["plant"]["motor"] == "STALLED"
    out = runner.invoke(main, ["fault", "repair", "motor", "--json"], env=env)
    assert json.loads(out.output)["applied"]["type"] == "MotorRepair"


def test_command_errors_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    runner = CliRunner()
    gone = f"unix:{tmp_path / 'gone.sock'}"
    out = runner.invoke(main, ["truth", "--control", gone])
    assert out.exit_code == 2
    assert "cannot reach the control API" in out.output
    out = runner.invoke(main, ["time", "advance", "soon", "--control", gone])
    assert out.exit_code == 2
    assert "'soon' is not a duration" in out.output
    assert len(out.output.strip().splitlines()) == 1
    out = runner.invoke(main, ["fault", "leak", "--control", gone])
    assert out.exit_code == 2
    assert "--ppm" in out.output
    out = runner.invoke(main, ["fault", "list"])
    assert out.exit_code == 0
    assert all(name in out.output for name in FAULTS)


@pytest.mark.e2e
def test_control_operations_log_the_instant_their_answer_names(tmp_path: Path) -> None:
    """A control operation's log line carries the same instant as its answer, in the one
    display style (docs/quantities.md), on the clock the clinic set."""
    pump = running_pump()
    assert pump.set_clock(1_772_352_000_000).__class__.__name__ == "Accepted"  # 2026-03-01
    pump_end, _programmer_end = memory_pair()
    device = PumpDevice(pump, KEYS, secrets.token_bytes)
    lines: list[str] = []
    with PumpServer(device, pump_end, ManualClock(), log=silent) as server:
        control = ControlServer(server, f"unix:{tmp_path / 'c.sock'}", log=lines.append)
        moved = control.handle({"op": "advance", "duration": "1h 30m 0.25s"})
        hit = control.handle({"op": "fault", "fault": "stall"})
    assert moved["ok"], moved
    assert hit["ok"], hit
    assert (moved["pump_clock"], moved["elapsed"]) == (
        "2026-03-01T09:30:00.250",
        "+0d 01:30:00.250",
    )
    assert lines == [
        "[2026-03-01T09:30:00.250 (+0d 01:30:00.250)] control: time advanced 5400250 ms",
        "[2026-03-01T09:30:00.250 (+0d 01:30:00.250)] control: fault injected: "
        "MotorStall(recover_after_s=None)",
    ]
    assert getattr(lines[0], "pump_clock_ms", None) == moved["pump_clock_ms"]
    assert getattr(lines[0], "internal_ms", None) == moved["now_ms"]
