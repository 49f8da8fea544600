#!/usr/bin/env python
"""Run one benchmark suite and record its figures.

    python benches/run.py SUITE [--install-peers] [--quick] [--repeats N] [--out PATH]

A suite is a module `benches/suites/<name>.py` exposing

    PEERS: list[str]            pip requirement strings of the peers it compares against (optional)
    run(ctx) -> list[dict]      rows {"figure", "value", "unit", "peer", "peer_value", "ratio"}

The table is printed and written with a description of the machine to
`benches/results/<suite>.json` (`<suite>.quick.json` with --quick, so a quick check never replaces
the recorded figures). `--install-peers` pip-installs the suite's PEERS into the *current*
interpreter's environment first; peers are never dependencies of extrema.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
SUITES_DIR = BENCHES / "suites"
RESULTS_DIR = BENCHES / "results"

if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

import harness  # noqa: E402


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_suite(name: str):
    suites = available_suites()
    if name not in suites:
        listed = ", ".join(suites) if suites else "(none)"
        raise SystemExit(f"run.py: unknown suite {name!r}; available suites: {listed}")
    module = importlib.import_module(f"suites.{name}")
    if not callable(getattr(module, "run", None)):
        raise SystemExit(f"run.py: suite {name!r} has no run(ctx) function")
    return module


def install_peers(module, name: str) -> None:
    peers = list(getattr(module, "PEERS", []))
    if not peers:
        print(f"suite {name!r} declares no peers; nothing to install")
        return
    cmd = [sys.executable, "-m", "pip", "install", *peers]
    print("installing peers into the current environment:", " ".join(cmd), flush=True)
    subprocess.check_call(cmd)
    importlib.invalidate_caches()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benches/run.py",
        description="Run an extrema benchmark suite against its peers; writes benches/results/SUITE.json.",
        epilog="suites: " + ", ".join(available_suites()),
    )
    parser.add_argument("suite", help="suite name: one of " + ", ".join(available_suites()))
    parser.add_argument("--install-peers", action="store_true",
                        help="pip-install the suite's peers into the current environment first")
    parser.add_argument("--quick", action="store_true",
                        help="small workloads and 3 repeats (a smoke run; results go to SUITE.quick.json)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 7, quick 3)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed")
    parser.add_argument("--out", default=None, help="result JSON path (default benches/results/SUITE.json)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU (Linux)")
    args = parser.parse_args(argv)

    module = load_suite(args.suite)
    if args.install_peers:
        install_peers(module, args.suite)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    machine = harness.machine_info()
    flags = machine["extrema_build_flags"]
    if isinstance(flags, dict):
        flags = flags.get("flags", flags)
    print(f"suite {args.suite}{' (quick)' if args.quick else ''} on {machine['cpu']}, "
          f"{machine['usable_cores']}/{machine['cores']} cores, {machine['python']}, "
          f"extrema {machine['extrema_version']} (build flags: {flags})", flush=True)
    load = machine.get("load_average_at_start")
    busy = load is not None and load[0] > 0.5 * machine["usable_cores"]
    ctx = harness.Context(quick=args.quick, repeats=args.repeats, seed=args.seed, repo=str(REPO))
    if busy:
        ctx.note(f"machine busy at start (load average {load[0]} on {machine['usable_cores']} cores): "
                 "absolute figures are noisy; ratios are measured interleaved and hold up better")
    started = time.perf_counter()
    rows = module.run(ctx)
    harness.validate_rows(rows)
    elapsed = time.perf_counter() - started

    result = {
        "suite": args.suite,
        "machine": machine,
        "rows": rows,
        "quick": args.quick,
        "repeats": ctx.repeats,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(elapsed, 1),
        "notes": ctx.notes,
    }
    out = Path(args.out) if args.out else RESULTS_DIR / f"{args.suite}{'.quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print()
    print(harness.format_table(rows))
    print(f"\n{len(rows)} rows in {elapsed:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
