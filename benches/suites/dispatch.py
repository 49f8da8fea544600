"""Dispatch suite: what it costs to deliver one record to a strategy hook.

`extrema.Dispatcher.dispatch(records)` routes TRADE records to the subscribed strategies' `on_trade`
on the calling thread, pointing one engine-owned `TradeView` at each record. Figures:

  1. no-op Python hook, 1 strategy        ns per record, view included (target <= 250 ns)
  2. no-op Cython hook, 1 strategy        ns per record (compiled here against the installed package;
                                           target <= 20 ns)
  3. fan-out to 1, 4 and 16 strategies    Python and Cython hooks: ns per record and per delivery
  4. a Python hook that reads the view    trade.price + trade.size (the view's float conversion)
  5. dispatch() of a 1-record array       the fixed cost of one call (small batches)

Peers, timed interleaved with extrema in the same run:
  * plain Python loop: `for t in trades: handler(t)` over prebuilt tuples, `handler` a bound no-op
    method of a plain Python class: the floor for "a Python function called per record", with no
    routing and no view (the note also gives iterating the numpy array itself, np.void per record);
  * NautilusTrader's MessageBus (if installed): `bus.publish(topic, trade_tick)` with prebuilt
    TradeTicks to K subscribed no-op handlers, the path its market data takes to handlers.

Verification: before timing, counting versions of the Python and Cython strategies must each have been
called exactly once per record, and during timing `Dispatcher.delivered` must grow by records x K per
call; otherwise the figure is not posted (a MISMATCH note says why).
"""

from __future__ import annotations

import time

import numpy as np

from harness import Case
from peers import nautilus_msgbus as nmb
from peers.compile_cython import compile_against_extrema

PEERS: list[str] = []          # NautilusTrader is optional (installed by the book suite's peers)

FULL = dict(n=100_000, single=50_000, call_s=0.04)
QUICK = dict(n=50_000, single=10_000, call_s=0.015)
FANOUT = (1, 4, 16)
PY_TARGET_NS = 250.0
CY_TARGET_NS = 20.0

CYTHON_SOURCE = r'''
# cython: language_level=3
"""No-op and counting Cython strategies for the dispatch benchmark."""
from libc.stdint cimport int64_t
cimport extrema
from extrema cimport Strategy, TradeView


cdef class NoopCy(Strategy):
    cpdef on_trade(self, TradeView trade):
        pass


cdef class CountCy(Strategy):
    cdef public int64_t n

    cpdef on_trade(self, TradeView trade):
        self.n += 1
'''


def _median_note(t) -> str:
    return f"median of {len(t.samples)}, spread {t.spread:.0%}"


def _sized(cases: dict, target_s: float) -> dict:
    """Repeat each case's body so one timed call lasts about target_s (a pilot call sizes it): on 2
    noisy shared cores a call of a few ms is one scheduler slice, and one preemption would be the sample."""
    out = {}
    for name, case in cases.items():
        state = case.setup() if case.setup is not None else None
        t0 = time.perf_counter()
        case.fn(state)
        dt = max(time.perf_counter() - t0, 1e-6)
        reps = max(1, min(200, round(target_s / dt)))
        out[name] = Case(lambda st, fn=case.fn, reps=reps: [fn(st) for _ in range(reps)], case.n_ops * reps,
                         case.setup)
    return out


def run(ctx) -> list[dict]:
    try:
        import extrema
        extrema.Dispatcher
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"dispatch suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc

    p = QUICK if ctx.quick else FULL
    n = p["n"]
    rows: list[dict] = []

    cy, secs, cc = compile_against_extrema(CYTHON_SOURCE, "_extrema_bench_dispatch_cy")
    ctx.log(f"compiled the Cython strategies against the installed extrema in {secs:.1f} s ({cc})")
    if nmb.AVAILABLE:
        ctx.log(f"peer: nautilus-trader {nmb.VERSION} MessageBus")
    else:
        ctx.note(f"NautilusTrader not importable ({nmb.IMPORT_ERROR}); its peer fields are null. "
                 "Install it with: python benches/run.py book --install-peers")

    reg = extrema.InstrumentRegistry()
    btc = reg.register("BTC_USDT", extrema.Market.SIM, "0.01", "0.001")
    arr = extrema.empty_records(n)
    arr["kind"] = extrema.RecordKind.TRADE
    arr["instrument_id"] = btc.id
    arr["sequence"] = np.arange(n)
    arr["price"] = 5_000_000 + np.arange(n) % 1000
    arr["quantity"] = 1 + np.arange(n) % 100
    ctx.log(f"workload: {n:,} TRADE records for {btc.name} (id {btc.id}) per call")

    class NoopPy(extrema.Strategy):
        def on_trade(self, trade):
            pass

    class CountPy(extrema.Strategy):
        def __init__(self, name=None):
            super().__init__(name)
            self.n = 0

        def on_trade(self, trade):
            self.n += 1

    class FieldsPy(extrema.Strategy):
        def on_trade(self, trade):
            trade.price
            trade.size

    def dispatcher(factory, k):
        d = extrema.Dispatcher(reg)
        strategies = [factory(f"s{j}") for j in range(k)]
        for s in strategies:
            i = d.add_strategy(s)
            d.subscribe(i, btc.id, extrema.RecordKind.TRADE)
        return d, strategies

    # ---- verification: hooks really run once per record per strategy, through the expected path
    ok = True
    for label, factory in (("python", CountPy), ("cython", cy.CountCy)):
        d, strategies = dispatcher(factory, 4)
        kinds = {s.overridden_hooks()["on_trade"] for s in strategies}   # as detected at registration
        d.dispatch(arr)
        counts = {s.n for s in strategies}
        if counts != {n} or kinds != {label} or d.delivered != 4 * n:
            ok = False
            ctx.note(f"MISMATCH: {label} counting strategies saw {counts} records (expected {n}), "
                     f"hooks detected as {kinds}, delivered {d.delivered}")
    if not ok:
        raise SystemExit("dispatch suite: the dispatcher did not deliver every record; no figures posted")

    rows += _single(ctx, p, arr, dispatcher, NoopPy, FieldsPy, cy.NoopCy)
    rows += _fanout(ctx, p, arr, dispatcher, NoopPy, cy.NoopCy)
    rows += _per_call(ctx, p, arr, dispatcher, NoopPy)
    return rows


def _checked_dispatch(d, k, arr, bad: list):
    """A case body: one dispatch() of arr, and a check that every record reached all k strategies."""
    dispatch = d.dispatch
    want = k * len(arr)

    def body(_):
        before = d.delivered
        dispatch(arr)
        if d.delivered - before != want:
            bad.append(d.delivered - before)
    return body


def _peer_plain_loop(arr):
    class Plain:
        def on_trade(self, trade):
            pass
    handler = Plain().on_trade
    items = arr.tolist()           # tuples of ints: what a Python producer would hand over

    def loop(items):
        for t in items:
            handler(t)

    def numpy_loop(a):
        for r in a:
            handler(r)
    return loop, items, numpy_loop


def _nautilus(k, n):
    if not nmb.AVAILABLE:
        return None
    publish, _bus = nmb.bus_with_handlers(k, lambda i: (lambda msg: None))
    ticks = nmb.trade_ticks(n)
    topic = nmb.TOPIC

    def body(ticks):
        for t in ticks:
            publish(topic, t)
    # check once that a publish reaches all k handlers
    seen = []
    cpublish, _cbus = nmb.bus_with_handlers(k, lambda i: (lambda msg: seen.append(msg)))  # distinct handlers
    for t in ticks[:10]:
        cpublish(topic, t)
    if len(seen) != 10 * k:
        raise RuntimeError(f"nautilus MessageBus delivered {len(seen)} of {10 * k}")
    return Case(body, n, lambda: ticks), _bus


def _single(ctx, p, arr, dispatcher, NoopPy, FieldsPy, NoopCy) -> list:
    n = len(arr)
    bad: list = []
    d_py, _ = dispatcher(NoopPy, 1)
    d_cy, _ = dispatcher(NoopCy, 1)
    d_fields, _ = dispatcher(FieldsPy, 1)
    loop, items, numpy_loop = _peer_plain_loop(arr)
    cases = {
        "py": Case(_checked_dispatch(d_py, 1, arr, bad), n),
        "cy": Case(_checked_dispatch(d_cy, 1, arr, bad), n),
        "fields": Case(_checked_dispatch(d_fields, 1, arr, bad), n),
        "plain": Case(loop, n, lambda: items),
        "numpy_iter": Case(numpy_loop, n, lambda: arr),
    }
    nt = _nautilus(1, n)
    if nt is not None:
        cases["nautilus"] = nt[0]
    t = ctx.measure(_sized(cases, p["call_s"]))
    if bad:
        ctx.note(f"MISMATCH: dispatch delivered {bad[:3]} instead of {n} per call; figures 1-2 not posted")
        return []

    py, cyt, plain = t["py"], t["cy"], t["plain"]
    plain_label = "plain Python loop: bound no-op method per prebuilt tuple"
    note_py = (f"{n:,} TRADE records per dispatch() call, one no-op `def on_trade(self, trade)`; {_median_note(py)}; "
               f"includes routing and re-pointing the engine-owned TradeView; iterating the numpy array "
               f"instead (np.void per record) costs {t['numpy_iter'].median:.0f} ns/record")
    rows = [ctx.row("no-op Python hook, 1 strategy (per record, view included)", py.median, "ns/record",
                    plain_label, plain.median, target=f"<= {PY_TARGET_NS:.0f} ns",
                    target_met=py.median <= PY_TARGET_NS, note=note_py)]
    if nt is not None:
        rows.append(ctx.row("no-op Python hook, 1 strategy (per record, view included)", py.median, "ns/record",
                            f"nautilus {nmb.VERSION} MessageBus.publish(prebuilt TradeTick), 1 handler",
                            t["nautilus"].median, target=f"<= {PY_TARGET_NS:.0f} ns",
                            target_met=py.median <= PY_TARGET_NS,
                            note=f"nautilus: {_median_note(t['nautilus'])}; its TradeTicks are built "
                                 f"beforehand (excluded), extrema's view is pointed at raw records (included)"))
    rows.append(ctx.row("no-op Cython hook, 1 strategy (per record)", cyt.median, "ns/record",
                        plain_label, plain.median, target=f"<= {CY_TARGET_NS:.0f} ns",
                        target_met=cyt.median <= CY_TARGET_NS,
                        note=(f"`cdef class NoopCy(Strategy): cpdef on_trade(self, TradeView trade): pass`, "
                              f"compiled in the run against the installed package, called through the vtable; "
                              f"{_median_note(cyt)}; {py.median / cyt.median:.1f}x faster than the Python hook")))
    rows.append(ctx.row("Python hook reading trade.price + trade.size (per record)", t["fields"].median,
                        "ns/record", plain_label, plain.median,
                        note=f"two float properties of the view per record; {_median_note(t['fields'])}; "
                             f"{t['fields'].median - py.median:.0f} ns more than the no-op hook"))
    return rows


def _fanout(ctx, p, arr, dispatcher, NoopPy, NoopCy) -> list:
    n = len(arr)
    rows = []
    for k in FANOUT:
        bad: list = []
        d_py, _ = dispatcher(NoopPy, k)
        d_cy, _ = dispatcher(NoopCy, k)
        cases = {"py": Case(_checked_dispatch(d_py, k, arr, bad), n),
                 "cy": Case(_checked_dispatch(d_cy, k, arr, bad), n)}
        nt = _nautilus(k, n)
        if nt is not None:
            cases["nautilus"] = nt[0]
        t = ctx.measure(_sized(cases, p["call_s"]))
        if bad:
            ctx.note(f"MISMATCH: fan-out to {k}: dispatch delivered {bad[:3]} instead of {k * n}; not posted")
            continue
        nt_label = f"nautilus {nmb.VERSION} MessageBus.publish, {k} handler{'s' if k > 1 else ''}"
        nt_rec = t["nautilus"].median if nt is not None else None
        for hook, key in (("Python", "py"), ("Cython", "cy")):
            tt = t[key]
            s = "strategy" if k == 1 else "strategies"
            rows.append(ctx.row(f"fan-out to {k} {s}, {hook} no-op hooks: per record", tt.median, "ns/record",
                                nt_label if nt is not None else None, nt_rec,
                                note=f"{_median_note(tt)}; {k} deliveries per record"))
            rows.append(ctx.row(f"fan-out to {k} {s}, {hook} no-op hooks: per delivery", tt.median / k,
                                "ns/delivery", nt_label if nt is not None else None,
                                nt_rec / k if nt_rec is not None else None,
                                note="per record / strategies"))
    return rows


def _per_call(ctx, p, arr, dispatcher, NoopPy) -> list:
    m = p["single"]
    singles = [arr[i:i + 1] for i in range(m)]
    d, _ = dispatcher(NoopPy, 1)
    dispatch = d.dispatch
    loop, items, _ = _peer_plain_loop(arr[:m])

    def one_by_one(singles):
        for s in singles:
            dispatch(s)

    t = ctx.measure(_sized({"single": Case(one_by_one, m, lambda: singles), "plain": Case(loop, m, lambda: items)},
                           p["call_s"]))
    return [ctx.row("dispatch() of a 1-record array, no-op Python hook (per call)", t["single"].median, "ns/call",
                    "plain Python loop: bound no-op method per prebuilt tuple", t["plain"].median,
                    note=(f"{m:,} calls with prebuilt 1-record views, from a Python for loop; "
                          f"{_median_note(t['single'])}; the fixed cost of a call over the per-record one "
                          f"(small batches, e.g. one venue message at a time)"))]
