"""``pumpemu decode``: frames and noise from hex, files, stdin, the bundled example and JSONL
captures, with sealed sessions opened by ``--keys``."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hil.capture import CaptureWriter, fields_of, read_capture
from hil.cli import main
from hil.decode_command import NOISE_ITEM_MAX, decode_stream, write_stream_json
from protocol.checksum import crc16
from protocol.codec import Frame, build_frame, encode, encode_payload, header_bytes
from protocol.device_state import Role, TherapyState
from protocol.keys import PumpKeys, generate_keys, serialize_key_file
from protocol.messages import (
    Ack,
    Authenticate,
    Challenge,
    CloseSession,
    Message,
    Opcode,
    OpenSession,
    ReadStatus,
    SessionOpened,
    StartTherapy,
    Status,
)
from protocol.request_kinds import REQUEST_KIND
from protocol.session import Accepted, Opened, ProgrammerSession, PumpSession, SessionLimits
from protocol.session import Challenge as PumpChallenge
from protocol.wire import FLAG_REPLY, FLAG_SEALED, TAG_LEN
from tests.protocol_doc import blocks, evaluate

READ_STATUS = encode(ReadStatus(), seq=6)
START = encode(StartTherapy(command_id=7), seq=7)


def run(*args: str, stdin: bytes | None = None, columns: int = 80) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(main, ["decode", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_example_decodes_frames_and_reports_noise_with_offsets() -> None:
    code, out, _ = run("--example", "--json")
    assert code == 0
    document = json.loads(out)
    kinds = [item["kind"] for item in document["items"]]
    assert kinds.count("noise") >= 2
    assert document["frames"] >= 10
    frames = [item for item in document["items"] if item["kind"] == "frame"]
    assert all("message" in frame for frame in frames)
    assert {frame["header"]["opcode"] for frame in frames} >= {"STAGE_PRESCRIPTION", "NAK"}
    # Items tile the stream: every byte is in exactly one frame or noise run.
    offset = 0
    for item in document["items"]:
        assert item["offset"] == offset
        offset += item["length"]
    assert offset == document["length"]


def test_example_table_is_readable() -> None:
    code, out, _ = run("--example")
    assert code == 0
    assert "noise" in out
    assert "STAGE_PRESCRIPTION" in out
    assert "prescription.drug_name=Morphine" in out


def test_hex_on_the_command_line_with_noise() -> None:
    code, out, _ = run("00ff" + READ_STATUS.hex(), START.hex(" "), "--json")
    assert code == 0
    items = json.loads(out)["items"]
    assert items[0] == {"kind": "noise", "offset": 0, "length": 2, "hex": "00ff"}
    assert items[1]["message"] == {"type": "ReadStatus"}
    assert items[2]["message"] == {"type": "StartTherapy", "command_id": 7}


def test_binary_file_and_stdin(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(READ_STATUS + b"\x00" + START)
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    assert json.loads(out)["frames"] == 2
    code, out, _ = run("-", "--json", stdin=READ_STATUS + START)
    assert code == 0
    assert json.loads(out)["frames"] == 2


def test_hex_text_file(tmp_path: Path) -> None:
    capture = tmp_path / "capture.hex"
    capture.write_text("# a comment\n" + READ_STATUS.hex(" ") + "\n")
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    assert json.loads(out)["frames"] == 1


def test_a_frame_with_a_good_crc_but_bad_payload_is_shown_with_its_error() -> None:
    head_and_body = bytes.fromhex("a55a010001000000000000003805000100000000")
    frame = head_and_body + crc16(head_and_body[2:]).to_bytes(2, "little")
    code, out, _ = run(frame.hex(), "--json")
    assert code == 0
    (item,) = json.loads(out)["items"]
    assert item["header"]["opcode"] == "ACKNOWLEDGE_ALARM"
    assert "payload.alarm" in item["error"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("zz",), "neither an existing file nor hex"),
        (("abc",), "odd number of hex digits"),
        ((), "nothing to decode"),
        (("--example", "a55a"), "either --example or a source"),
        (("/no/such/file.bin",), "neither an existing file nor hex"),
    ],
    ids=["not-hex", "odd-digits", "no-source", "example-and-source", "missing-file"],
)
def test_bad_input_is_one_line_and_exit_code_2(args: tuple[str, ...], words: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert words in err
    assert "Traceback" not in err


def test_help_has_examples() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "pumpemu decode --example" in out
    assert "--json" in out


# -- captures (hil/capture.py) ------------------------------------------------------------

T0 = 1_700_000_000_000_000_000
KEYS = generate_keys("PE-000042", bytes(range(1, 65)))
OTHER_KEYS = generate_keys("PE-000042", bytes(range(101, 165)))  # same pump serial, other keys
LIMITS = SessionLimits(idle_timeout_s=60, max_session_s=600, max_failed_openings=3, lockout_s=300)
STATUS = Status(
    state=TherapyState.CONTINUOUS,
    rate_nl_per_day=250_000,
    reservoir_nl=18_000_000,
    battery_percent=87,
    active_alarms=frozenset(),
    last_command_id=41,
    pump_time_ms=5_000,
)


class RecordedVisit:
    """A programmer and a pump joined through a CaptureWriter, as ``pumpemu ctl`` would
    record them: requests on "tx", replies on "rx", sealed with the real session objects."""

    def __init__(self, writer: CaptureWriter, pump_keys: PumpKeys = KEYS) -> None:
        self.writer = writer
        self.pump = PumpSession(pump_keys, LIMITS)
        self.now = 0
        self.prog: ProgrammerSession | None = None

    def send(self, direction: str, frame: bytes) -> None:
        self.now += 10
        # Split every frame in two chunks, as a serial link would deliver it.
        self.writer.record(direction, frame[:7], sim_ms=self.now, wall_ns=T0 + self.now)
        self.writer.record(direction, frame[7:], sim_ms=self.now, wall_ns=T0 + self.now)

    def open(self, role: Role, nonce_byte: int) -> None:
        prog = self.prog = ProgrammerSession(KEYS.serial, role, KEYS.key_for(role))
        request = prog.start(bytes([nonce_byte]) * 16)
        self.send("tx", encode(OpenSession(request.role, request.programmer_nonce), seq=1))
        challenge = self.pump.open_request(
            role, request.programmer_nonce, bytes([nonce_byte + 1]) * 16, self.now
        )
        assert isinstance(challenge, PumpChallenge)
        self.send(
            "rx",
            encode(Challenge(challenge.pump_nonce, challenge.serial), seq=challenge.seq, ref=1),
        )
        auth = prog.answer_challenge(challenge.pump_nonce, challenge.serial)
        self.send("tx", encode(Authenticate(auth.proof), seq=auth.seq))
        opened = self.pump.authenticate(auth.proof, self.now)
        assert isinstance(opened, Opened)
        self.send(
            "rx",
            encode(
                SessionOpened(opened.proof, opened.idle_timeout_s, opened.max_session_s),
                seq=opened.seq,
                ref=auth.seq,
            ),
        )
        prog.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)

    def exchange(self, request: Message, reply: Message) -> None:
        """One sealed request and its sealed reply, each checked by the receiving end."""
        assert self.prog is not None
        opcode, plaintext = encode_payload(request)
        seq = self.prog.next_send_seq
        head = header_bytes(FLAG_SEALED, seq, 0, opcode, len(plaintext) + TAG_LEN)
        body = self.prog.seal(head, plaintext)
        self.send("tx", build_frame(Frame(FLAG_SEALED, seq, 0, opcode, body)))
        accepted = self.pump.receive_sealed(head, body, REQUEST_KIND[opcode], self.now)
        assert isinstance(accepted, Accepted)
        reply_opcode, reply_plain = encode_payload(reply)
        flags = FLAG_SEALED | FLAG_REPLY
        reply_seq = self.pump.next_send_seq
        reply_head = header_bytes(flags, reply_seq, seq, reply_opcode, len(reply_plain) + TAG_LEN)
        reply_body = self.pump.seal(reply_head, reply_plain)
        self.send("rx", build_frame(Frame(flags, reply_seq, seq, reply_opcode, reply_body)))
        assert self.prog.open(reply_head, reply_body) == reply_plain


def ack(command_id: int, request: Opcode) -> Ack:
    return Ack(command_id, request, TherapyState.CONTINUOUS, 18_000_000, 0)


def two_session_capture(path: Path) -> None:
    """A clinician session (status, start therapy), then a patient session (status)."""
    with CaptureWriter(path, "ctl", wall_ns=T0) as writer:
        visit = RecordedVisit(writer)
        visit.open(Role.CLINICIAN, 0x10)
        writer.note("session opened", sim_ms=visit.now, wall_ns=T0 + visit.now)
        visit.exchange(ReadStatus(), STATUS)
        visit.exchange(StartTherapy(command_id=42), ack(42, Opcode.START_THERAPY))
        visit.exchange(CloseSession(), ack(0, Opcode.CLOSE_SESSION))
        visit.open(Role.PATIENT, 0x20)
        visit.exchange(ReadStatus(), STATUS)


def key_file(tmp_path: Path, keys: PumpKeys, name: str = "pump.keys") -> str:
    path = tmp_path / name
    path.write_text(serialize_key_file(keys))
    path.chmod(0o600)
    return str(path)


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    path = key_file(tmp_path, KEYS)
    os.chmod(path, 0o644)
    code, out, err = run(str(capture), "--keys", path, "--json")
    assert code == 0
    assert err.splitlines() == [
        f"warning: key file {path} has mode 0644: group or others can access it; "
        f"run: chmod 600 {path} (pumpemu serve and ctl refuse it)"
    ]
    assert any(f["sealed"] and f["message"] for f in frames_of(json.loads(out)))


def frames_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in document["items"] if item["kind"] == "frame"]


SEALED_EXPECTED = [
    ("tx", "READ_STATUS", {"type": "ReadStatus"}),
    ("rx", "STATUS", fields_of(STATUS)),
    ("tx", "START_THERAPY", {"type": "StartTherapy", "command_id": 42}),
    ("rx", "ACK", fields_of(ack(42, Opcode.START_THERAPY))),
    ("tx", "CLOSE_SESSION", {"type": "CloseSession"}),
    ("rx", "ACK", fields_of(ack(0, Opcode.CLOSE_SESSION))),
    ("tx", "READ_STATUS", {"type": "ReadStatus"}),
    ("rx", "STATUS", fields_of(STATUS)),
]


def test_capture_with_keys_opens_every_sealed_frame_of_both_sessions(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    code, out, err = run(str(capture), "--keys", key_file(tmp_path, KEYS), "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["format"] == "pumpemu-capture/1"
    assert document["notes"] == 1
    frames = frames_of(document)
    handshake = [f for f in frames if not f["sealed"]]
    assert [f["header"]["opcode"] for f in handshake] == [
        "OPEN_SESSION",
        "CHALLENGE",
        "AUTHENTICATE",
        "SESSION_OPENED",
    ] * 2
    assert handshake[0]["message"]["role"] == "CLINICIAN"
    assert handshake[4]["message"]["role"] == "PATIENT"
    sealed = [f for f in frames if f["sealed"]]
    assert [(f["direction"], f["header"]["opcode"], f["message"]) for f in sealed] == (
        SEALED_EXPECTED
    )
    assert all(f["opened"] and "error" not in f for f in sealed)
    # Times and places come through from the capture.
    first = frames[0]
    assert (first["source"], first["direction"], first["sim_ms"]) == ("ctl", "tx", 10)
    assert first["wall_ns"] == T0 + 10
    assert first["wall"] == "2023-11-14T22:13:20.000000Z"
    assert first["offset"] == 0
    assert [i["line"] for i in document["items"]] == list(range(1, document["records"] + 1))


def test_capture_without_keys_shows_sealed_frames_as_sealed(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    sealed = [f for f in frames_of(json.loads(out)) if f["sealed"]]
    assert [f["header"]["opcode"] for f in sealed] == [op for _, op, _ in SEALED_EXPECTED]
    assert all(not f["opened"] and "message" not in f and "error" not in f for f in sealed)


def test_capture_with_the_wrong_key_file_shows_frames_not_opening(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    code, out, err = run(str(capture), "--keys", key_file(tmp_path, OTHER_KEYS), "--json")
    assert (code, err) == (0, "")
    sealed = [f for f in frames_of(json.loads(out)) if f["sealed"]]
    assert len(sealed) == len(SEALED_EXPECTED)
    for frame in sealed:
        assert not frame["opened"]
        assert "message" not in frame
        assert frame["error"].startswith("does not open: the key file's ")
        assert "SESSION_OPENED proof does not verify" in frame["error"]
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, OTHER_KEYS))
    assert code == 0
    assert "does not open" in out
    assert "Traceback" not in out


def test_keys_for_another_pump_are_named_as_such(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    elsewhere = generate_keys("PE-000777", bytes(range(101, 165)))
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, elsewhere), "--json")
    assert code == 0
    errors = {f["error"] for f in frames_of(json.loads(out)) if f["sealed"]}
    assert errors == {
        "does not open: the session is with pump PE-000042, the key file is for PE-000777"
    }


def test_a_tampered_sealed_frame_does_not_open_and_the_rest_still_do(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    lines = capture.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if '"opcode":"STATUS"' in line)
    record = json.loads(lines[index])
    frame = bytearray.fromhex(record["hex"])
    frame[20] ^= 0x01  # flip a ciphertext bit, then fix the CRC so only the tag can tell
    frame[-2:] = crc16(bytes(frame[2:-2])).to_bytes(2, "little")
    record["hex"] = frame.hex()
    lines[index] = json.dumps(record)
    capture.write_text("\n".join(lines) + "\n")
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, KEYS), "--json")
    assert code == 0
    sealed = [f for f in frames_of(json.loads(out)) if f["sealed"]]
    broken = [f for f in sealed if not f["opened"]]
    assert len(broken) == 1
    assert broken[0]["header"]["opcode"] == "STATUS"
    assert broken[0]["error"] == "does not open: body: sealed frame failed authentication"
    assert sum(f["opened"] for f in sealed) == len(SEALED_EXPECTED) - 1


def test_sealed_frames_without_their_handshake_cannot_open(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    # Keep the start record and the first session's sealed traffic only.
    kept = [
        line
        for line in capture.read_text().splitlines()
        if '"sealed":true' in line or '"kind":"capture"' in line
    ][:3]
    capture.write_text("\n".join(kept) + "\n")
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, KEYS), "--json")
    assert code == 0
    errors = [f["error"] for f in frames_of(json.loads(out))]
    assert errors == ["cannot open: no session handshake before it in the input"] * 2


def test_capture_table_shows_direction_times_notes_and_plaintext(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, KEYS), columns=160)
    assert code == 0
    assert "22:13:20.000" in out  # wall time of day
    assert "session opened" in out  # the note
    assert "sealed, opened" in out
    assert "last_command_id=41" in out  # from a sealed STATUS
    assert "command_id=42" in out
    code, out, _ = run(str(capture), columns=160)
    assert code == 0
    assert "give --keys KEYFILE to open" in out
    assert "last_command_id=41" not in out


def test_capture_is_recognised_by_content_and_on_stdin(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    renamed = tmp_path / "visit.log"
    renamed.write_bytes(capture.read_bytes())
    code, out, _ = run(str(renamed), "--json")
    assert code == 0
    assert json.loads(out)["format"] == "pumpemu-capture/1"
    code, out, _ = run("-", "--json", stdin=capture.read_bytes())
    assert code == 0
    assert json.loads(out)["frames"] == 16


def test_a_binary_stream_starting_with_a_brace_is_still_a_stream(tmp_path: Path) -> None:
    dump = tmp_path / "dump.bin"
    dump.write_bytes(b"{" + READ_STATUS)
    code, out, _ = run(str(dump), "--json")
    assert code == 0
    items = json.loads(out)["items"]
    assert [item["kind"] for item in items] == ["noise", "frame"]


def test_noise_in_a_capture_is_shown_with_its_offset(tmp_path: Path) -> None:
    capture = tmp_path / "noisy.jsonl"
    with CaptureWriter(capture, "proxy", wall_ns=T0) as writer:
        writer.record("a->b", b"\x13\x37" + READ_STATUS, sim_ms=5, wall_ns=T0)
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    noise, frame = json.loads(out)["items"][1:]
    assert (noise["kind"], noise["offset"], noise["hex"], noise["direction"]) == (
        "noise",
        0,
        "1337",
        "a->b",
    )
    assert (frame["offset"], frame["message"]) == (2, {"type": "ReadStatus"})
    code, out, _ = run(str(capture), columns=160)
    assert code == 0
    assert "noise" in out
    assert "2 bytes: 13 37" in out


def test_keys_work_on_a_byte_stream_holding_a_whole_session(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    # Both directions interleaved in one raw stream, as on a half-duplex line.
    stream = b"".join(r.data for r in read_capture(capture) if r.kind == "frame")
    code, out, _ = run(stream.hex(), "--keys", key_file(tmp_path, KEYS), "--json")
    assert code == 0
    sealed = [item for item in json.loads(out)["items"] if item.get("sealed")]
    assert [item["message"] for item in sealed] == [m for _, _, m in SEALED_EXPECTED]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"kind":"capture"}\nnot json\n', "line 1: capture record has no 'source'"),
        (
            json.dumps(
                {
                    "kind": "capture",
                    "format": "pumpemu-capture/1",
                    "source": "s",
                    "wall": "x",
                    "wall_ns": 1,
                    "sim_ms": None,
                }
            )
            + "\n\n{oops\n",
            "line 3: not JSON",
        ),
        ("12\n", "line 1: a record is a JSON object"),
    ],
    ids=["missing-field", "not-json-on-line-3", "not-an-object"],
)
def test_malformed_capture_is_one_line_and_exit_code_2(
    tmp_path: Path, content: str, words: str
) -> None:
    capture = tmp_path / "bad.jsonl"
    capture.write_text(content)
    code, out, err = run(str(capture))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert words in err
    assert "Traceback" not in err


def test_a_missing_key_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    code, out, err = run(str(capture), "--keys", str(tmp_path / "none.keys"))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "does not exist" in err


def test_a_new_writer_run_starts_without_keys(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    sealed_lines = [line for line in capture.read_text().splitlines() if '"sealed":true' in line]
    # Append a second run whose sealed frames have no handshake of their own: the first
    # run's keys must not be tried on them.
    with CaptureWriter(capture, "ctl", wall_ns=T0):
        pass
    with capture.open("a") as file:
        file.write(sealed_lines[-1] + "\n")
    code, out, _ = run(str(capture), "--keys", key_file(tmp_path, KEYS), "--json")
    assert code == 0
    last = frames_of(json.loads(out))[-1]
    assert last["error"] == "cannot open: no session handshake before it in the input"


# -- bounded memory (issue 11) --------------------------------------------------------------


def _peak_while_decoding(frames: int) -> int:
    """tracemalloc's peak while decoding ``frames`` frames in 4 KiB chunks, every item
    turned into its JSON text and dropped."""

    frame = encode(OpenSession(Role.CLINICIAN, bytes(16)), seq=1)
    chunk = frame * 120 + b"\x00" * 40  # frames and some noise in every chunk
    chunks = (chunk for _ in range(frames // 120))
    written = 0

    def sink(text: str) -> None:
        nonlocal written
        written += len(text)

    gc.collect()
    tracemalloc.start()
    try:
        write_stream_json(sink, "bench", decode_stream(chunks))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert written > frames * 300  # every frame was written


def test_decoding_is_lazy_and_its_memory_does_not_grow_with_the_input() -> None:
    frame = encode(OpenSession(Role.CLINICIAN, bytes(16)), seq=1)
    fed = 0

    def chunks() -> Any:
        nonlocal fed
        for _ in range(1000):
            fed += 1
            yield frame * 10

    items = decode_stream(chunks())
    assert iter(items) is items  # a generator, not a list
    assert fed == 0
    first = next(items)
    assert (first.kind, first.offset) == ("frame", 0)
    assert fed == 1  # one chunk read for the first item
    _peak_while_decoding(120)  # first use: caches and imports
    small, large = _peak_while_decoding(240), _peak_while_decoding(2_400)
    # Ten times the input, about the same peak; the margin is for cyclic garbage the
    # collector has not reached yet. Keeping the 2,400 items would take several MB.
    assert large < small * 4, (small, large)
    assert large < 1_000_000, large


def test_a_long_noise_run_is_shown_in_bounded_items_that_tile_the_stream() -> None:
    noise = bytes(range(256)) * 10  # no sync pair in it
    data = noise + READ_STATUS
    for size in (1, 7, 1000, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        items = list(decode_stream(chunks))
        assert [(i.kind, i.offset, len(i.raw)) for i in items] == [
            ("noise", 0, NOISE_ITEM_MAX),
            ("noise", NOISE_ITEM_MAX, NOISE_ITEM_MAX),
            ("noise", 2 * NOISE_ITEM_MAX, len(noise) - 2 * NOISE_ITEM_MAX),
            ("frame", len(noise), len(READ_STATUS)),
        ]
        assert b"".join(i.raw for i in items) == data


def test_a_bad_line_late_in_a_capture_file_prints_nothing(tmp_path: Path) -> None:
    capture = tmp_path / "visit.jsonl"
    two_session_capture(capture)
    with capture.open("a") as file:
        file.write("{oops\n")
    code, out, err = run(str(capture))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "not JSON" in err


def test_stdin_that_stops_being_hex_is_one_error_line_after_the_output(tmp_path: Path) -> None:
    # Stdin is read once: its first 64 KiB chunk, all hex text, decides how it is read.
    lines = (READ_STATUS.hex() + "\n") * 2_000
    code, out, err = run("-", stdin=lines.encode() + b"\xff" * 10)
    assert code == 2
    assert out.count("READ_STATUS") > 1_000
    assert err == "Error: stdin began as hex text, but line 2001: not ASCII\n"


def test_the_text_output_ends_with_the_totals() -> None:
    code, out, _ = run(READ_STATUS.hex() + "0000")
    assert code == 0
    assert out.splitlines()[-1] == f"hex: {len(READ_STATUS) + 2} bytes, 1 frames, 2 bytes of noise"


# -- issue 12: the new opcodes render -----------------------------------------------------------

ISSUE_12_TYPES = {
    "ReadStatusDetail", "ReadCatheter", "ReadPatientView", "StatusDetail", "CatheterInfo",
    "PatientView", "ClearMemoryError", "ResetFlowValve", "SetCatheter",
}  # fmt: skip
ISSUE_12_VECTORS = [
    v
    for v in blocks("vector")
    if type(evaluate(v["message"])).__name__ in ISSUE_12_TYPES or v["name"] in {"ack-set-catheter"}
]


@pytest.mark.parametrize("vector", ISSUE_12_VECTORS, ids=[v["name"] for v in ISSUE_12_VECTORS])
def test_decode_renders_the_issue_12_messages(vector: dict[str, str]) -> None:
    """Every documented frame of the new opcodes decodes to its message and every field,
    by name, in --json and in text."""
    message = evaluate(vector["message"])
    code, out, _ = run(vector["hex"], "--json")
    assert code == 0
    (item,) = json.loads(out)["items"]
    assert item["header"]["opcode"] == message.OPCODE.name
    assert item["message"]["type"] == type(message).__name__
    assert item["message"] == {"type": type(message).__name__, **fields_of(message)}
    code, text, _ = run(vector["hex"], columns=200)
    assert code == 0
    assert message.OPCODE.name in text


def test_the_issue_12_vectors_cover_every_new_message() -> None:
    found = {type(evaluate(v["message"])).__name__ for v in ISSUE_12_VECTORS}
    assert found >= ISSUE_12_TYPES
