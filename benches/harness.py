"""Shared pieces of the benchmark runner: timing, machine description, result rows, table, JSON.

Timing model (machines are 2 noisy shared cores):
* every case is a callable that performs `n_ops` operations, optionally after an untimed `setup`
  (e.g. rebuild the book from its snapshot) so that every repeat does identical work;
* cases that are compared are *interleaved* (A B C, B C A, ... per round), so drifting background
  load hits all contenders alike and ratios stay stable even when absolute numbers move;
* `warmup` untimed rounds first, then `repeats` timed rounds; GC is collected before and disabled
  during each timed call; the figure is the median of the per-op times (ns/op) over the repeats.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

perf_counter_ns = time.perf_counter_ns


# ----------------------------------------------------------------------------------------- timing

@dataclass
class Case:
    """`fn(state)` performs `n_ops` operations; `state = setup()` runs untimed before each call."""
    fn: Callable[[Any], Any]
    n_ops: int
    setup: Callable[[], Any] | None = None


@dataclass
class Timing:
    name: str
    n_ops: int
    samples: list = field(default_factory=list)  # ns per op, one per timed repeat

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: a quick noise indicator."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    @property
    def per_second(self) -> float:
        return 1e9 / self.median

    def __repr__(self) -> str:
        return f"Timing({self.name}: median {self.median:.1f} ns/op, spread {self.spread:.0%}, n={len(self.samples)})"


def _timed_call(case: Case) -> float:
    state = case.setup() if case.setup is not None else None
    gc.collect()
    gc.disable()
    try:
        t0 = perf_counter_ns()
        case.fn(state)
        t1 = perf_counter_ns()
    finally:
        gc.enable()
    return (t1 - t0) / case.n_ops


def measure(cases: dict[str, Case], *, repeats: int = 7, warmup: int = 1) -> dict[str, Timing]:
    """Interleaved timing of several cases; returns {name: Timing} (median of per-op ns)."""
    names = list(cases)
    timings = {name: Timing(name, cases[name].n_ops) for name in names}
    for rnd in range(warmup + repeats):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:  # rotate the order each round
            per_op = _timed_call(cases[name])
            if rnd >= warmup:
                timings[name].samples.append(per_op)
    return timings


def measure_one(case: Case, *, repeats: int = 7, warmup: int = 1, name: str = "case") -> Timing:
    return measure({name: case}, repeats=repeats, warmup=warmup)[name]


def unrolled(stmt: str, env: dict, *, n: int, unroll: int = 10) -> Case:
    """A Case running `stmt` n*unroll times with the loop cost spread over `unroll` copies.

    For very cheap operations (a property read): the statement is compiled `unroll` times in the body
    of a `for _ in repeat(None, n)` loop, like timeit but with the loop overhead divided by `unroll`.
    """
    body = "".join(f"        {stmt}\n" for _ in range(unroll))
    src = f"def _bench(_state):\n    for _ in _repeat(None, {n}):\n{body}"
    namespace = dict(env)
    namespace["_repeat"] = itertools.repeat
    exec(compile(src, f"<bench {stmt!r}>", "exec"), namespace)
    return Case(namespace["_bench"], n * unroll)


# ------------------------------------------------------------------------------------------- rows

ROW_KEYS = ("figure", "value", "unit", "peer", "peer_value", "ratio")


def _round(x: float | None, sig: int = 4) -> float | None:
    if x is None:
        return None
    if x != x or x in (float("inf"), float("-inf")):
        return None
    if x == 0:
        return 0.0
    from math import floor, log10
    digits = sig - int(floor(log10(abs(x)))) - 1
    return round(x, max(digits, 0)) if digits > 0 else float(round(x, digits))


def row(figure: str, value: float, unit: str, peer: str | None = None, peer_value: float | None = None, *,
        lower_is_better: bool = True, target: str | None = None, target_met: bool | None = None,
        note: str | None = None) -> dict:
    """One result row. ratio = how many times better extrema is than the peer (> 1: extrema wins):
    peer/value when lower is better (ns/op), value/peer when higher is better (ops/s)."""
    ratio = None
    if peer_value is not None and value:
        ratio = peer_value / value if lower_is_better else value / peer_value
    out = {
        "figure": figure,
        "value": _round(value),
        "unit": unit,
        "peer": peer,
        "peer_value": _round(peer_value),
        "ratio": _round(ratio, 3),
    }
    if peer_value is None:
        out["peer_value"] = None
        out["ratio"] = None
    if target is not None:
        out["target"] = target
        out["target_met"] = target_met
    if note:
        out["note"] = note
    return out


# ------------------------------------------------------------------------------------- context

class Context:
    """What a suite's run(ctx) gets: mode, timing helpers, notes."""

    def __init__(self, *, quick: bool, repeats: int | None, seed: int, repo: str):
        self.quick = quick
        self.repeats = repeats if repeats is not None else (3 if quick else 7)
        self.warmup = 1
        self.seed = seed
        self.repo = repo            # repository root (for tests/models/...)
        self.notes: list[str] = []

    def note(self, msg: str) -> None:
        print(f"  note: {msg}", flush=True)
        self.notes.append(msg)

    def log(self, msg: str) -> None:
        print(f"  {msg}", flush=True)

    def measure(self, cases: dict[str, Case], *, repeats: int | None = None, warmup: int | None = None):
        return measure(cases, repeats=self.repeats if repeats is None else repeats,
                       warmup=self.warmup if warmup is None else warmup)

    row = staticmethod(row)


# ------------------------------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _jsonable(x):
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [_jsonable(v) for v in x]
        return str(x)


def extrema_info() -> dict:
    """Version, build flags (extrema.build_info() if it exists) and where the core was loaded from."""
    try:
        extrema = importlib.import_module("extrema")
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return {"importable": False, "error": f"{type(exc).__name__}: {exc}", "build_flags": None}
    info = {"importable": True, "version": getattr(extrema, "__version__", None), "build_flags": None}
    build_info = getattr(extrema, "build_info", None)
    if callable(build_info):
        try:
            info["build_flags"] = _jsonable(build_info())
        except Exception as exc:  # noqa: BLE001
            info["build_flags"] = f"build_info() failed: {exc}"
    book = getattr(extrema, "OrderBook", None)
    if book is not None:
        mod = sys.modules.get(book.__module__)
        info["order_book_module"] = book.__module__
        info["order_book_file"] = getattr(mod, "__file__", None)
    return info


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    import numpy
    ext = extrema_info()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _mem_total_gib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "extrema_version": ext.get("version"),
        "extrema_build_flags": ext.get("build_flags"),
        "extrema_core": ext.get("order_book_file"),
        "load_average_at_start": load,
    }


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; falls back to peak RSS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------------------- output

def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if abs(x) >= 1e6:
            return f"{x / 1e6:,.2f}M"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.3g}" if abs(x) < 1 else f"{x:.2f}"
    return str(x)


def _fmt_ratio(x) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def format_table(rows: list[dict]) -> str:
    headers = ["figure", "extrema", "unit", "peer", "peer value", "ratio", "target"]
    lines = []
    for r in rows:
        target = ""
        if r.get("target"):
            met = r.get("target_met")
            target = f"{r['target']} {'MET' if met else 'MISSED' if met is not None else '?'}"
        ratio = _fmt_ratio(r.get("ratio"))
        lines.append([r["figure"], _fmt(r["value"]), r["unit"], r.get("peer") or "-",
                      _fmt(r.get("peer_value")), ratio, target])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
           "  ".join("-" * w for w in widths)]
    for l in lines:
        out.append("  ".join(c.ljust(w) if i != 1 and i != 4 and i != 5 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(l, widths))))
    return "\n".join(out)


def format_markdown(rows: list[dict]) -> str:
    out = ["| figure | extrema | unit | peer | peer | ratio | target |",
           "| --- | ---: | --- | --- | ---: | ---: | --- |"]
    for r in rows:
        target = ""
        if r.get("target"):
            met = r.get("target_met")
            target = f"{r['target']} ({'met' if met else 'missed' if met is not None else '?'})"
        ratio = _fmt_ratio(r.get("ratio"))
        out.append(f"| {r['figure']} | {_fmt(r['value'])} | {r['unit']} | {r.get('peer') or '-'} | "
                   f"{_fmt(r.get('peer_value'))} | {ratio} | {target} |")
    return "\n".join(out)


def validate_rows(rows: list) -> None:
    if not isinstance(rows, list):
        raise TypeError(f"a suite's run(ctx) must return a list of rows, got {type(rows).__name__}")
    for r in rows:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise ValueError(f"row {r!r} lacks {missing}")
