"""A programmer's session, captured, turned into a scenario file (docs/scenarios.md,
"Recording a session"): a field bug becomes a regression test.

The capture (``pumpemu serve --capture`` or ``pumpemu ctl --capture``, docs/capture.md) is
opened with the pump's key file by the decoder's own ``Unsealer`` (hil/decode_command.py).
Each request the programmer made becomes a step at its time from the first one (whole
seconds), with the role of its session; a command retried under the same command id (a
lost reply, C1) is one step. The reply the pump gave becomes the step's expectation:
``applied``, or ``refused`` with its code. Frame-level refusals (FRAME_CORRUPT, a replay)
judge a frame, not the request, and are left out. ``[setup]`` cannot be read from a
capture: the file says so, for the author to fill in.

A ``*_command`` module, like the decoder whose frame decoding and unsealing it reuses
(hil/decode_command.py): library modules never import command modules (docs/api.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil import quantities as q
from hil.capture import CaptureRecord, read_capture
from hil.decode_command import decode_capture, unseal
from protocol.keys import PumpKeys

FRAME_LEVEL = {"FRAME_CORRUPT", "REPLAY_DETECTED", "FRAME_NOT_AUTHENTIC"}
READS = {
    "ReadStatus": "status",
    "ReadEventLog": "log",
    "ReadAlarms": "alarms",
    "ReadPrescription": "prescription",
    "ReadClock": "clock",
    "ReadDeviceInfo": "info",
}
SKIPPED = {"OpenSession", "Authenticate", "CloseSession", "KeepAlive"}


@dataclass(slots=True)
class _Request:
    time_ms: int
    role: str
    message: dict[str, Any]
    reply: dict[str, Any] | None = None
    seqs: set[int] = field(default_factory=set)


def record_capture(path: str | Path, keys: PumpKeys, scenario_id: str) -> str:
    """The scenario file's text for the capture at ``path``."""
    return render(requests(read_capture(path), keys), scenario_id, str(path))


def requests(records: Iterable[CaptureRecord], keys: PumpKeys) -> list[_Request]:
    """The programmer's requests in order, each with the pump's last word on it."""
    out: list[_Request] = []
    by_seq: dict[tuple[str, int], _Request] = {}
    by_command: dict[int, _Request] = {}
    roles: dict[str, str] = {}
    for item in unseal(decode_capture(records), keys):
        record = item.record
        if item.kind != "frame" or record is None or item.header is None:
            continue
        message = item.message
        if message is None:
            continue
        source = record.source
        seq = int(item.header.get("seq", 0))
        if "REPLY" in item.header.get("flags", []):
            request = by_seq.get((source, int(item.header.get("ref", 0))))
            code = message.get("code")
            if request is not None and code not in FRAME_LEVEL:
                request.reply = message
            continue
        kind = message.get("type", "")
        if kind == "OpenSession":
            roles[source] = str(message.get("role", "CLINICIAN")).lower()
        if kind in SKIPPED:
            continue
        command_id = message.get("command_id")
        if isinstance(command_id, int) and command_id in by_command:
            request = by_command[command_id]  # a retry of the same command (C1): one step
        else:
            time_ms = record.sim_ms if record.sim_ms is not None else record.wall_ns // 10**6
            request = _Request(time_ms, roles.get(source, "clinician"), message)
            out.append(request)
            if isinstance(command_id, int):
                by_command[command_id] = request
        request.seqs.add(seq)
        by_seq[(source, seq)] = request
    return out


def render(found: list[_Request], scenario_id: str, capture: str) -> str:
    lines = [
        f"# Recorded by `pumpemu scenario record` from {Path(capture).name}: "
        f"{len(found)} request(s).",
        "# A capture does not show the pump's state before it: fill in [setup] (profile,",
        "# reservoir, prescription as they were) before running this file.",
        f"id = {json.dumps(scenario_id)}",
        f"title = {json.dumps('Replay of ' + Path(capture).name)}",
        'tags = ["recorded"]',
        "",
        "[setup]",
        'profile = "peristaltic-20"',
    ]
    origin = found[0].time_ms if found else 0
    stage: dict[str, Any] | None = None
    for request in found:
        message = request.message
        kind = message["type"]
        if kind == "StagePrescription":
            stage = message["prescription"]
            continue
        if kind == "RefillBegin":
            continue  # the refill step is both requests; its complete carries the values
        body = _step(kind, message, stage)
        if body is None:
            continue
        at = max(0, request.time_ms - origin) // 1_000
        lines += ["", "[[steps]]", f'at = "{at} s"', *body]
        if request.role != "clinician" or kind == "PatientBolusRequest":
            lines.append(f'role = "{request.role}"')
        expect = _expect(request, kind)
        if expect:
            lines.append(f"expect = {{ {expect} }}")
    return "\n".join(lines) + "\n"


def _expect(request: _Request, kind: str) -> str:
    reply = request.reply
    if reply is None:
        return ""
    if reply.get("type") == "Nak":
        return f'outcome = "refused", refusal = "{reply["code"]}"'
    if kind in READS:
        return 'outcome = "answered"'
    return 'outcome = "applied"'


def _q(value: str) -> str:
    return json.dumps(value)


def _step(kind: str, m: Mapping[str, Any], stage: Mapping[str, Any] | None) -> list[str] | None:
    if kind in READS:
        return ['do = "interrogate"', f'read = "{READS[kind]}"']
    simple = {
        "StartTherapy": "start",
        "StopTherapy": "stop",
        "CancelBolus": "cancel-bolus",
        "AlarmTest": "alarm-test",
        "PatientBolusRequest": "patient-bolus",
    }
    if kind in simple:
        return [f'do = "{simple[kind]}"']
    if kind == "ClinicianBolus":
        return [
            'do = "clinician-bolus"',
            f'dose = "{q.volume(m["dose_nl"])}"',
            f'duration = "{q.duration(m["duration_s"])}"',
        ]
    if kind == "PrimingBolus":
        return ['do = "prime"', f'volume = "{q.volume(m["catheter_volume_nl"])}"']
    if kind == "AcknowledgeAlarm":
        return ['do = "acknowledge"', f'alarm = "{m["alarm"]}"']
    if kind == "SetClock":
        return ['do = "set-clock"', f'time = "{q.pump_time(m["pump_time_ms"])}"']
    if kind == "RefillComplete":
        return [
            'do = "refill"',
            f'volume = "{q.volume(m["new_volume_nl"])}"',
            f'withdrawn = "{q.volume(m["withdrawn_nl"])}"',
            f'concentration = "{q.concentration(m["new_concentration_ug_per_ml"])}"',
        ]
    if kind == "CommitPrescription" and stage is not None:
        return ['do = "program"', f"prescription = {_prescription(stage)}"]
    return None


def _offset(start_s: int, weekly: bool) -> str:
    days, rest = divmod(start_s, 86_400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')[days]} {text}" if weekly else text


def _prescription(rx: Mapping[str, Any]) -> str:
    """An inline table in the prescription file format (docs/ctl.md), every quantity in the
    one display style, exact (docs/quantities.md, "Display")."""
    mode = str(rx["mode"]).lower()
    weekly = str(rx["repeat"]) == "WEEKLY"
    parts = [
        f"drug = {_q(rx['drug_name'])}",
        f'concentration = "{q.concentration(rx["concentration_ug_per_ml"])}"',
        f'mode = "{mode}"',
        f'low_reservoir_threshold = "{q.volume(rx["low_reservoir_threshold_nl"])}"',
    ]
    steps = rx["steps"]
    if mode == "continuous":
        parts.append(f'rate = "{q.rate(steps[0]["rate_nl_per_day"])}"')
    elif mode == "flex":
        parts.append(f'repeat = "{"weekly" if weekly else "daily"}"')
        table = ", ".join(
            f'{{ start = "{_offset(step["start_s"], weekly)}", '
            f'rate = "{q.rate(step["rate_nl_per_day"])}" }}'
            for step in steps
        )
        parts.append(f"steps = [{table}]")
    bolus = rx.get("patient_bolus")
    if bolus:
        parts.append(
            f'patient_bolus = {{ dose = "{q.volume(bolus["dose_nl"])}", duration = '
            f'"{q.duration(bolus["duration_s"])}", lockout = "{q.duration(bolus["lockout_s"])}", '
            f"max_per_24h = {bolus['max_per_24h']} }}"
        )
    return "{ " + ", ".join(parts) + " }"
