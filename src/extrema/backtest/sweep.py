"""Parameter sweeps: one backtest per process, every result one row of a table.

``sweep(run_one, grid)`` calls ``run_one(**params)`` for every parameter set in worker processes started
with the ``spawn`` method (the same on Linux and macOS, and safe in a process that already runs threads
such as the engine's). ``run_one`` must therefore be a top-level function of an importable module, and
the parameters picklable; a script that calls `sweep` keeps that call under ``if __name__ == "__main__":``
(spawned workers import the script's module). It returns a `BacktestResult` (its stats are computed in the worker, so the
arrays never cross the process boundary) or a stats dict.

A run that raises becomes a row with ``error`` set (exception type and message) and the traceback in
``traceback``; a worker process that dies (killed, crashed in native code) breaks the pool, and the runs
it left unfinished are retried each in a process of its own, so only the run that kills its process is
reported as failed. The sweep itself does not raise for a failing run.

Each row: the parameters, then the flat summary of `extrema.backtest.stats` (a stats key that collides
with a parameter name is prefixed ``stats.``), then ``error``, ``traceback``, ``pid`` (the worker that ran
it) and ``wall_seconds_run``.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import itertools
import math
import multiprocessing
import os
import pickle
import sys
import time
import traceback as tb
from pathlib import Path

from extrema.backtest.stats import flat_summary

ROW_EXTRA_KEYS = ("error", "traceback", "pid", "wall_seconds_run")


def expand_grid(grid) -> list[dict]:
    """A dict of lists -> the cartesian product (keys in the dict's order, last key varying fastest);
    a list of dicts -> those dicts as given."""
    if isinstance(grid, dict):
        for key, values in grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise TypeError(f"sweep grid[{key!r}] must be a list of values, got {values!r}")
        keys = list(grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(list(grid[k]) for k in keys))]
    params = list(grid)
    for i, p in enumerate(params):
        if not isinstance(p, dict):
            raise TypeError(f"sweep grid item {i} must be a dict of parameters, got {type(p).__name__}")
    return [dict(p) for p in params]


def _run_in_worker(run_one, params: dict) -> dict:
    """Executed in the worker: run, reduce to a flat stats row, never raise."""
    started = time.perf_counter()
    row = {"error": None, "traceback": None, "pid": os.getpid()}
    try:
        outcome = run_one(**params)
        if hasattr(outcome, "stats") and callable(outcome.stats):
            stats = flat_summary(outcome.stats())
        elif isinstance(outcome, dict):
            stats = flat_summary(outcome)
        else:
            raise TypeError(f"run_one returned {type(outcome).__name__}; it must return a BacktestResult "
                            f"or a stats dict")
        row["stats"] = stats
    except BaseException as exc:     # a run's failure is data for the table, not the sweep's failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = tb.format_exc()
        row["stats"] = {}
    row["wall_seconds_run"] = time.perf_counter() - started
    return row


def _assemble(params: dict, outcome: dict) -> dict:
    row = dict(params)
    for key, value in outcome.get("stats", {}).items():
        row[f"stats.{key}" if key in params else key] = value
    for key in ROW_EXTRA_KEYS:
        row[key] = outcome.get(key)
    return row


def _broken_row(exc: BaseException) -> dict:
    return {"error": f"worker process died: {type(exc).__name__}: {exc}", "traceback": None, "pid": None,
            "wall_seconds_run": None, "stats": {}}


def _run_isolated(run_one, params: dict, context) -> dict:
    """One run in a process of its own: a crash there is this run's error and nobody else's."""
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(_run_in_worker, run_one, params).result()
        except cf.process.BrokenProcessPool as exc:
            return _broken_row(exc)


def sweep(run_one, grid, *, processes: int | None = None, progress: bool = False) -> list[dict]:
    """Run ``run_one(**params)`` for every parameter set of `grid` in up to `processes` worker processes
    (default: one per CPU, at most one per parameter set). Returns one row per parameter set, in the
    grid's order. ``progress=True`` prints one line per finished run to stderr."""
    param_sets = expand_grid(grid)
    if not param_sets:
        return []
    if processes is None:
        processes = os.cpu_count() or 1
    if processes < 1:
        raise ValueError(f"sweep processes must be >= 1, got {processes}")
    processes = min(processes, len(param_sets))
    try:
        pickle.dumps(run_one)
    except Exception as exc:
        raise TypeError(f"sweep needs run_one to be a top-level function of an importable module (worker "
                        f"processes import it by name); {run_one!r} cannot be sent: {exc}") from None
    context = multiprocessing.get_context("spawn")
    outcomes: dict[int, dict] = {}
    unfinished = []

    def report(i):
        if progress:
            err = outcomes[i]["error"]
            print(f"sweep {len(outcomes)}/{len(param_sets)} {param_sets[i]}" + (f" failed: {err}" if err else ""),
                  file=sys.stderr, flush=True)

    with cf.ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, run_one, p): i for i, p in enumerate(param_sets)}
        for future in cf.as_completed(futures):
            i = futures[future]
            try:
                outcomes[i] = future.result()
                report(i)
            except cf.process.BrokenProcessPool:
                unfinished.append(i)
            except Exception as exc:     # e.g. parameters that cannot be pickled to the worker
                outcomes[i] = {"error": f"could not run in a worker: {type(exc).__name__}: {exc}",
                               "traceback": None, "pid": None, "wall_seconds_run": None, "stats": {}}
                report(i)
    if unfinished:
        # Some worker died and took the pool with it; which run did it is unknown, so every run left
        # over gets a process of its own (up to `processes` at a time).
        with cf.ThreadPoolExecutor(max_workers=processes) as threads:
            retried = {threads.submit(_run_isolated, run_one, param_sets[i], context): i for i in sorted(unfinished)}
            for future in cf.as_completed(retried):
                i = retried[future]
                outcomes[i] = future.result()
                report(i)
    return [_assemble(param_sets[i], outcomes[i]) for i in range(len(param_sets))]


# ----------------------------------------------------------------------------------------- the table
def _columns(rows: list[dict], columns=None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_rows(rows: list[dict], sort_by: str | None, *, descending: bool = True) -> list[dict]:
    """Rows ordered by `sort_by`; rows without a value there (None, NaN, a failed run) always last."""
    if sort_by is None:
        return list(rows)
    if rows and not any(sort_by in row for row in rows):
        raise KeyError(f"cannot sort the sweep table by {sort_by!r}: no row has it "
                       f"(columns: {', '.join(_columns(rows))})")
    present = [r for r in rows if not _missing(r.get(sort_by))]
    missing = [r for r in rows if _missing(r.get(sort_by))]

    def key(row):
        value = row[sort_by]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value, "")
        return (1, 0, str(value))
    return sorted(present, key=key, reverse=descending) + missing


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text.splitlines()[0] if "\n" in text else text


def sweep_table(rows: list[dict], path=None, *, sort_by: str | None = "sharpe", descending: bool = True,
                columns=None, file=None, max_width: int = 40) -> str:
    """Print `rows` as an aligned text table sorted by `sort_by` (missing / None values last; None keeps
    the given order) and, when `path` is given, write every row and column to that CSV file. The
    ``traceback`` column is left out of the printed table (it stays in the CSV). Returns the text."""
    if sort_by is not None and rows and not any(sort_by in row for row in rows):
        sort_by = None if sort_by == "sharpe" else sort_by   # the default only applies when present
    ordered = sort_rows(rows, sort_by, descending=descending)
    all_columns = _columns(ordered, columns)
    shown = [c for c in all_columns if c != "traceback" or columns is not None]
    cells = [[_cell(r.get(c))[:max_width] for c in shown] for r in ordered]
    widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(shown)]

    def line(values):
        return "  ".join(v.rjust(w) for v, w in zip(values, widths)).rstrip()
    text = "\n".join([line(shown), line(["-" * w for w in widths]), *(line(row) for row in cells)]) + "\n"
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=all_columns, extrasaction="ignore")
            writer.writeheader()
            for row in ordered:
                writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in all_columns})
    print(text, end="", file=file if file is not None else sys.stdout)
    return text
