"""Machine suite: how long this machine keeps a spinning thread's working set cached.

Figure (see benches/README.md, "The tick_to_order suite"): a thread pinned to the engine's CPU walks a
random pointer chain through a working set, each walk after spinning for a gap that touches nothing else
(machine/cache_residency.c, compiled here with the system C compiler). ns per cache line, p50 of 300 walks,
for gaps of 1 µs .. 10 ms; two working sets: 300 lines packed (19 KB, 5 pages) and 300 lines one per page
(the TLB too). On a dedicated core every gap costs the same; on a shared VM the host evicts the set and
the walk after a long gap runs from memory. This is why the engine's busy-poll loop warms its hot path up
between events (extrema.engine.warm) and why tick_to_order figures depend on the trade rate.
Baseline: the 1 µs gap in the same run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PEERS: list[str] = []

SOURCE = Path(__file__).resolve().parent.parent / "machine" / "cache_residency.c"
SETS = {"19 KB packed": (300, 64), "300 pages, a line each": (300, 4096)}


def _build(workdir: str) -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("machine suite: no C compiler (cc / gcc) found; install build-essential")
    exe = os.path.join(workdir, "cache_residency")
    subprocess.run([cc, "-O2", "-o", exe, str(SOURCE)], check=True)
    return exe


def run(ctx) -> list[dict]:
    cpu = sorted(os.sched_getaffinity(0))[-1]          # where the tick_to_order suite pins the engine
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = _build(tmp)
        for label, (lines, stride) in SETS.items():
            out = subprocess.run([exe, str(cpu), str(lines), str(stride)], check=True, capture_output=True,
                                 text=True).stdout
            walks = [(int(gap), float(ns)) for gap, ns in (line.split() for line in out.splitlines())]
            base = walks[0][1]
            for gap_us, ns in walks:
                rows.append(ctx.row(f"cached working set, {label}: ns per line after a {gap_us:,} µs spin", ns,
                                    "ns", "the same after 1 µs", base,
                                    note=f"CPU {cpu}; ratio < 1: slower than right after the last use"))
    return rows
