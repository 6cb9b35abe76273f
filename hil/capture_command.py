"""``pumpemu capture``: work on JSONL captures. ``capture export --pcapng`` writes one as
pcapng for Wireshark and tshark (hil/pcapng.py, docs/capture.md "pcapng export")."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hil.errors import UsageError
from hil.json_output import echo_json, json_option

CAPTURE_EPILOG = """\b
Examples:
  pumpemu capture export --pcapng visit.jsonl -o visit.pcapng
  wireshark visit.pcapng          after: pumpemu wireshark install
"""

EXPORT_EPILOG = """\b
Examples:
  pumpemu capture export --pcapng pumpemu-demo-capture.jsonl -o demo.pcapng
  pumpemu capture export --pcapng visit.jsonl -o visit.pcapng --json
  tshark -X lua_script:$(pumpemu wireshark path) -r demo.pcapng
"""


@click.group(epilog=CAPTURE_EPILOG)
def capture() -> None:
    """Work on JSONL traffic captures (docs/capture.md)."""


@capture.command(epilog=EXPORT_EPILOG)
@click.argument("source", metavar="CAPTURE")
@click.option(
    "--pcapng",
    "as_pcapng",
    is_flag=True,
    required=True,
    help="Write pcapng (the one export format; required, so a later format is explicit).",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (replaced if it exists), or '-' for stdout.",
)
@json_option(
    'one JSON object of what was written: {"source", "out", "packets", "link_type"} '
    "(not with -o -, where stdout is the pcapng)"
)
def export(source: str, as_pcapng: bool, out: Path, as_json: bool) -> None:
    """Write the JSONL capture CAPTURE as pcapng: one packet per record, in file order.

    Link type LINKTYPE_USER0 (147), nanosecond timestamps (the record's wall time), the
    direction in the EPB flags (rx inbound, tx outbound), and a pseudo-header with the pump
    time, direction and source (docs/capture.md, "pcapng export"). Open it in Wireshark
    with the shipped dissector (pumpemu wireshark install).
    """
    del as_pcapng  # the only format
    if as_json and str(out) == "-":
        raise UsageError("--json and -o - both want stdout: give -o FILE with --json")
    # The codec behind these loads on use, so --help imports none of it (docs/architecture.md).
    from hil.capture import read_capture  # noqa: PLC0415
    from hil.pcapng import PcapngError, pcapng_blocks  # noqa: PLC0415

    # Check every line before writing anything: a bad line gives one error and no file.
    count = sum(1 for _ in read_capture(source))
    blocks = pcapng_blocks(read_capture(source))
    if str(out) == "-":
        try:
            stream = sys.stdout.buffer
            for block in blocks:
                stream.write(block)
            stream.flush()
        except PcapngError as error:
            raise UsageError(f"{source}: {error}") from None
        return
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tmp.open("wb") as file:
            for block in blocks:
                file.write(block)
        os.replace(tmp, out)
    except PcapngError as error:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{source}: {error}") from None
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {out}: {error.strerror or error}") from None
    if as_json:
        echo_json(
            {"source": source, "out": str(out), "packets": count, "link_type": "LINKTYPE_USER0"}
        )
        return
    click.echo(f"wrote {out}: {count} packets (link type LINKTYPE_USER0)", err=True)
