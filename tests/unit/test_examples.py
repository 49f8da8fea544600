"""Every example runs (briefly) as a user would run it."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLI = [sys.executable, "-m", "extrema.cli"]

RUNS = [
    ("book_demo.py", [sys.executable, EXAMPLES / "book_demo.py"], "applied 1,000,000 depth records"),
    ("engine_demo.py", [sys.executable, EXAMPLES / "engine_demo.py", "--seconds", "0.5"],
     "records read on another thread"),
    ("sim_demo.py", [sys.executable, EXAMPLES / "sim_demo.py", "--seconds", "4"], "orders sent over the WebSocket API"),
    ("sim_demo.py", [sys.executable, EXAMPLES / "sim_demo.py", "--seconds", "4", "--market", "usdm"],
     "orders sent over the WebSocket API"),
    ("backtest_sweep.py", [sys.executable, EXAMPLES / "backtest_sweep.py", "--seconds", "2", "--processes", "2",
                           "--out", "{tmp}"], "6 backtests; best edge="),
    ("config.toml", [*CLI, "run", EXAMPLES / "config.toml", "--duration", "2", "--quiet"],
     "orders sent over the WebSocket API"),
]
# Run by other tests: the Cython strategy is compiled against the installed package by test_cimport.py.
ELSEWHERE = {"cython_strategy.pyx": "tests/unit/test_cimport.py"}


@pytest.mark.parametrize("name, argv, expect", RUNS, ids=[f"{r[0]} {' '.join(map(str, r[1][3:]))}" for r in RUNS])
def test_example_runs(name, argv, expect, tmp_path):
    out = subprocess.run([str(a).replace("{tmp}", str(tmp_path)) for a in argv], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout, out.stdout


def test_every_example_is_run_by_a_test():
    examples = {p.name for p in EXAMPLES.iterdir() if p.is_file() and not p.name.startswith(".")}
    covered = {r[0] for r in RUNS} | set(ELSEWHERE)
    assert examples <= covered, f"examples without a test: {sorted(examples - covered)}"
