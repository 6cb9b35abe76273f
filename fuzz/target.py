"""One harness under atheris: ``python -m fuzz.target NAME [libFuzzer arguments]``.

fuzz/run.py starts this once per harness; run it by hand to replay a crash
(``python -m fuzz.target codec crash-...``) or to pass libFuzzer flags of your own.
protocol, emulator, hil and fuzz are instrumented for coverage; the check is the same
function the hypothesis tests call (``fuzz.harnesses.HARNESSES``).
"""

from __future__ import annotations

import os
import sys

import atheris
from atheris.import_hook import instrument_imports

with instrument_imports(include=["protocol", "emulator", "hil", "fuzz"]):
    from fuzz.harnesses import HARNESSES


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in HARNESSES:
        sys.exit(f"usage: python -m fuzz.target {{{','.join(HARNESSES)}}} [libFuzzer args]")
    check = HARNESSES[argv[1]]
    # libFuzzer's -merge starts argv[0] again; fuzz.run points it at a launcher script.
    program = os.environ.get("PUMPEMU_FUZZ_ARGV0", argv[0])
    atheris.Setup([program, *argv[2:]], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
