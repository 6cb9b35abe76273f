"""Run the atheris harnesses and report inputs run, exec/s and memory.

    python -m fuzz.run --runs 100000                      # every harness, 100 000 inputs each
    python -m fuzz.run --harness codec --runs 2000000 --jobs 1
    python -m fuzz.run --plan campaign                    # the 10-million-input campaign
    python -m fuzz.run --minimise --keep 6                # refresh fuzz/corpus from .fuzz

Each harness runs as its own process (``python -m fuzz.target``) with libFuzzer's per-input
timeout (``-timeout``) and memory limit (``-rss_limit_mb``), seeded with the documented
vectors (written fresh from docs/protocol.md into the work directory, so they never drift)
and the corpus kept in fuzz/corpus/NAME. New inputs go to WORK/NAME/corpus, crashes to
WORK/NAME/. At the end a table gives per harness: inputs run, exec/s, peak RSS, and the
RSS libFuzzer reported first and last (flat memory: the two stay close), and the exit
status (0: no crash, no hang, no leak past the limit). ``--json`` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fuzz.harnesses import HARNESSES
from fuzz.seeds import SEEDS

CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_LEN = {"framer": 4096, "codec": 2048, "device": 4096, "session": 512, "state": 16384}
"""libFuzzer's -max_len per harness: above the largest frame (1041 bytes), a long session,
a saved state (about 7 KB)."""
CAMPAIGN = {
    "codec": 8_500_000,
    "framer": 1_000_000,
    "device": 400_000,
    "session": 80_000,
    "state": 20_000,
}
"""The issue-11 campaign: 10 million inputs in total, shared by measured speed (the state
harness is slow: every restore runs protocol.documents' nesting scan; docs/fuzzing.md)."""

_RSS = re.compile(r"^#(\d+)\s.*\brss: (\d+)Mb", re.MULTILINE)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)


@dataclass
class Outcome:
    harness: str
    runs_asked: int
    inputs_run: int
    exec_per_s: int
    peak_rss_mb: int
    first_rss_mb: int
    last_rss_mb: int
    seconds: float
    exit_code: int
    log: str


def write_seeds(name: str, directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS[name]()
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()  # noqa: S324 - a file name, not a security use
        (directory / name).write_bytes(seed)
    return len(seeds)


def run_one(
    name: str, runs: int, work: Path, timeout_s: int, rss_limit_mb: int, *, max_time_s: int = 0
) -> Outcome:
    home = work / name
    corpus, seeds = home / "corpus", home / "seeds"
    corpus.mkdir(parents=True, exist_ok=True)
    write_seeds(name, seeds)
    kept = CORPUS / name
    dirs = [str(corpus), str(seeds)] + ([str(kept)] if kept.is_dir() else [])
    log = home / "fuzz.log"
    command = [
        sys.executable, "-m", "fuzz.target", name, *dirs,
        f"-runs={runs}", f"-timeout={timeout_s}", f"-rss_limit_mb={rss_limit_mb}",
        f"-max_len={MAX_LEN[name]}", "-print_final_stats=1", f"-artifact_prefix={home}/",
        f"-max_total_time={max_time_s}",
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    stats = {key: int(value) for key, value in _STAT.findall(text)}
    rss = [int(mb) for _, mb in _RSS.findall(text)]
    return Outcome(
        harness=name,
        runs_asked=runs,
        inputs_run=stats.get("number_of_executed_units", 0),
        exec_per_s=stats.get("average_exec_per_sec", 0),
        peak_rss_mb=stats.get("peak_rss_mb", max(rss, default=0)),
        first_rss_mb=rss[0] if rss else 0,
        last_rss_mb=rss[-1] if rss else 0,
        seconds=round(seconds, 1),
        exit_code=code,
        log=str(log),
    )


def minimise(name: str, work: Path, keep: int) -> list[Path]:
    """Merge WORK/NAME/corpus and fuzz/corpus/NAME with libFuzzer's -merge=1 (the inputs
    that reach distinct coverage), and keep at most ``keep`` of them, the largest under
    MAX_LEN, in fuzz/corpus/NAME. Files named ``regress-*`` (inputs that found a bug) stay."""
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    launcher = home / "target.sh"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fuzz.target {name} "$@"\n')
    launcher.chmod(0o755)
    merged = home / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    kept = CORPUS / name
    kept.mkdir(parents=True, exist_ok=True)
    sources = [d for d in (home / "corpus", kept) if d.is_dir()]
    env = {**os.environ, "PUMPEMU_FUZZ_ARGV0": str(launcher)}
    command = [
        str(launcher),
        "-merge=1",
        f"-max_len={MAX_LEN[name]}",
        str(merged),
        *map(str, sources),
    ]
    with (home / "merge.log").open("wb") as out:
        subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    chosen = sorted(merged.iterdir(), key=lambda p: (-p.stat().st_size, p.name))[:keep]
    contents = [p.read_bytes() for p in chosen]
    for old in kept.iterdir():
        if not old.name.startswith("regress-"):
            old.unlink()
    written = []
    for data in contents:
        path = kept / hashlib.sha1(data).hexdigest()  # noqa: S324 - a name, not a security use
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--harness", action="append", choices=sorted(HARNESSES))
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per harness")
    parser.add_argument("--plan", choices=["campaign"], help="inputs per harness from CAMPAIGN")
    parser.add_argument("--work", type=Path, default=Path(".fuzz"), help="corpus and crashes")
    parser.add_argument("--jobs", type=int, default=2, help="harnesses run at once")
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument(
        "--max-time", type=int, default=0, help="stop each harness after this many seconds"
    )
    parser.add_argument("--json", type=Path, help="write the outcomes here too")
    parser.add_argument("--minimise", action="store_true", help="refresh fuzz/corpus, no run")
    parser.add_argument("--keep", type=int, default=6, help="inputs kept per harness")
    args = parser.parse_args(argv)
    names = args.harness or list(CAMPAIGN if args.plan else HARNESSES)
    if args.minimise:
        for name in names:
            written = minimise(name, args.work, args.keep)
            print(f"{name}: kept {len(written)} inputs in {CORPUS / name}")
        return 0
    plan = {n: CAMPAIGN[n] if args.plan else args.runs for n in names}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(
            pool.map(
                lambda n: run_one(
                    n, plan[n], args.work, args.timeout, args.rss_limit_mb, max_time_s=args.max_time
                ),
                sorted(plan, key=lambda n: -plan[n] / _SPEED[n]),
            )
        )
    print(f"{'harness':8} {'inputs':>10} {'exec/s':>7} {'peak MB':>7} {'RSS first->last':>15} "
          f"{'s':>7}  exit")  # fmt: skip
    for o in outcomes:
        print(
            f"{o.harness:8} {o.inputs_run:>10,} {o.exec_per_s:>7,} {o.peak_rss_mb:>7} "
            f"{f'{o.first_rss_mb}->{o.last_rss_mb}':>15} {o.seconds:>7}  {o.exit_code}"
        )
    print(f"total    {sum(o.inputs_run for o in outcomes):>10,}")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return max((o.exit_code for o in outcomes), default=0)


_SPEED = {"framer": 320, "codec": 3600, "device": 130, "session": 50, "state": 8}
"""exec/s measured in the campaign (2 cores, shared), to start the longest runs first."""

if __name__ == "__main__":
    sys.exit(main())
