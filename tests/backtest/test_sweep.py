"""Parameter sweeps: the grid expands as documented, runs go to >= 2 spawned worker processes, a failing
run (an exception, or a worker that dies) is a row with its error, and sweep_table prints / saves it."""
import csv
import io

import pytest

from extrema.backtest.stats import SUMMARY_KEYS
from extrema.backtest.sweep import expand_grid, sort_rows, sweep, sweep_table

import backtest_samples


def test_expand_grid():
    assert expand_grid({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert expand_grid([{"a": 1}, {"a": 5, "c": 2}]) == [{"a": 1}, {"a": 5, "c": 2}]
    assert expand_grid({"a": range(3)}) == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert expand_grid({"a": []}) == []
    with pytest.raises(TypeError, match=r"grid\['a'\] must be a list"):
        expand_grid({"a": 3})
    with pytest.raises(TypeError, match=r"grid\['a'\] must be a list"):
        expand_grid({"a": "abc"})
    with pytest.raises(TypeError, match="item 1 must be a dict"):
        expand_grid([{"a": 1}, 2])
    assert sweep(backtest_samples.run_dict, {"seed": []}) == []
    with pytest.raises(TypeError, match="top-level function"):
        sweep(lambda seed: None, {"seed": [1]})
    with pytest.raises(ValueError, match="processes must be >= 1"):
        sweep(backtest_samples.run_dict, {"seed": [1]}, processes=0)


def test_sweep_runs_in_parallel_processes_and_reports_a_failing_run(tmp_path):
    rendezvous = tmp_path / "pids"
    rendezvous.mkdir()
    grid = [{"seed": 1, "directory": str(rendezvous)}, {"seed": 2, "directory": str(rendezvous)},
            {"seed": 99, "directory": "unused"},
            {"seed": 3, "directory": "unused", "callback": lambda: 0}]    # cannot be sent to a worker
    rows = sweep(backtest_samples.run_rendezvous_or_fail, grid, processes=2)
    assert [r["seed"] for r in rows] == [1, 2, 99, 3]                   # grid order, not completion order
    ok, failed, unsendable = rows[:2], rows[2], rows[3]
    assert all(r["error"] is None and r["traceback"] is None for r in ok)
    assert len({r["pid"] for r in ok}) == 2                              # two worker processes ran at once
    assert all(r["trades"] == 200 and r["orders"] == 250 for r in ok)
    assert set(SUMMARY_KEYS) <= set(ok[0])
    expected = backtest_samples.run_random(1).stats()["summary"]
    assert rows[0]["pnl"] == pytest.approx(expected["pnl"]) and rows[0]["sharpe"] == pytest.approx(expected["sharpe"])
    assert failed["error"] == "ValueError: bad parameter set 99"
    assert "run_failing" in failed["traceback"] and "bad parameter set 99" in failed["traceback"]
    assert "pnl" not in failed and failed["directory"] == "unused"
    assert unsendable["error"].startswith("could not run in a worker") and "pnl" not in unsendable


def test_a_worker_that_dies_fails_only_its_own_run():
    # One worker: 12 runs, then 13 kills the process and breaks the pool; 13 is retried alone, dies
    # again and is reported; 12 keeps its result (or is retried alone and succeeds).
    rows = sweep(backtest_samples.run_dying, {"seed": [12, 13]}, processes=1)
    assert [r["seed"] for r in rows] == [12, 13]
    assert rows[1]["error"].startswith("worker process died") and rows[1]["pid"] is None
    assert rows[0]["error"] is None and rows[0]["trades"] == 50


def _rows():
    return [{"p": 1, "sharpe": 0.5, "pnl": 10.0, "error": None},
            {"p": 2, "sharpe": None, "pnl": None, "error": "ValueError: boom", "traceback": "Traceback...\nline"},
            {"p": 3, "sharpe": 2.25, "pnl": -4.0, "error": None},
            {"p": 4, "sharpe": -1.0, "pnl": 3.0, "error": None}]


def test_sweep_table_sorts_aligns_and_writes_csv(tmp_path):
    buf = io.StringIO()
    text = sweep_table(_rows(), tmp_path / "out" / "sweep.csv", sort_by="sharpe", file=buf)
    assert buf.getvalue() == text
    lines = text.splitlines()
    header = lines[0].split()
    assert header == ["p", "sharpe", "pnl", "error"]                    # traceback only in the CSV
    assert [line.split()[0] for line in lines[2:]] == ["3", "1", "4", "2"]   # descending, None last
    widths = {len(line) for line in lines[:2]}
    assert len(widths) == 1                                              # header and rule align
    assert lines[2].index("2.25") + len("2.25") == lines[0].index("sharpe") + len("sharpe")
    with open(tmp_path / "out" / "sweep.csv", newline="") as fh:
        saved = list(csv.DictReader(fh))
    assert [r["p"] for r in saved] == ["3", "1", "4", "2"]
    assert saved[3]["traceback"] == "Traceback...\nline" and saved[3]["sharpe"] == ""
    assert float(saved[0]["sharpe"]) == 2.25

    ascending = sweep_table(_rows(), sort_by="pnl", descending=False, file=io.StringIO())
    assert [line.split()[0] for line in ascending.splitlines()[2:]] == ["3", "4", "1", "2"]
    kept = sweep_table(_rows(), sort_by=None, columns=["p", "pnl"], file=io.StringIO())
    assert kept.splitlines()[0].split() == ["p", "pnl"]
    assert [line.split()[0] for line in kept.splitlines()[2:]] == ["1", "2", "3", "4"]
    with pytest.raises(KeyError, match="cannot sort the sweep table by 'nope'"):
        sweep_table(_rows(), sort_by="nope", file=io.StringIO())
    # The default column (sharpe) applies only when present.
    plain = sweep_table([{"x": 2}, {"x": 1}], file=io.StringIO())
    assert [line.split()[0] for line in plain.splitlines()[2:]] == ["2", "1"]
    assert [r["p"] for r in sort_rows(_rows(), "error", descending=False)] == [2, 1, 3, 4]

