"""Risk suite: the pre-trade check chain, order registration, and order updates / fills through the
order table and the portfolio (extrema.ExecutionCore).

Figures (see benches/README.md, "The risk suite"):
  1. full pre-trade chain, one order, called from Python: `core.risk.check_order(...)` with every rule
     configured for the strategy and globally, the order passing all 15 (the worst case: nothing stops
     early), 4 instruments with positions (the exposure and the daily-loss rules walk all of them), marks
     read from live books, a price band, a venue token bucket. Target: < 1 µs.
  2. the same chain called from Cython (`ExecutionCore.risk.check`, a module compiled in the run against
     the installed package, the way a Cython strategy or the engine calls it). Target: < 1 µs.
  3. submit = chain + registration in the order table (what the engine does before the client's submit),
     from Python (`core.submit`) and from Cython (`submit_check`).
  4. an ORDER_UPDATE (ACCEPTED) through the state machine: in a batch (`core.process(records)`, per
     record) and one record per call from Python.
  5. a FILL through the state machine (duplicate check, quantities) and the portfolio (position, P&L of
     the strategy and of the venue, fees, balances), FIFO and average cost, in a batch.
  6. an early rejection (the kill switch) from Python: the floor of a call.

Baseline, timed interleaved in the same run: the plain-Python reference models of the same rules
(tests/models/risk_reference.py, order_state_reference.py, pnl_reference.py: what the compiled code is
differential-tested against) on an identical state. They are deliberately straightforward Python, so the
ratio says what compiling the rules buys, not how extrema compares with another product.

Verification before timing: the benchmark order passes both the compiled and the reference chain; a
rejected variant is rejected by both with the same rule; batches change exactly the orders / positions
they should (MISMATCH notes otherwise, and the figure is not posted).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from harness import Case, unrolled
from peers.compile_cython import compile_against_extrema

PEERS: list[str] = []

FULL = dict(n=200_000, batch=100_000, single=50_000, call_s=0.05)
QUICK = dict(n=40_000, batch=20_000, single=10_000, call_s=0.02)
TARGET_NS = 1000.0
T0 = 1_800_000_000_000_000

CYTHON_SOURCE = r'''
# cython: language_level=3
"""The pre-trade chain and submit called from compiled code, as the engine / a Cython strategy does."""
from libc.stdint cimport int64_t, uint32_t
from extrema._core.execution cimport ExecutionCore
from extrema._core.risk cimport RiskResult


def check_loop(ExecutionCore core, int owner, uint32_t iid, int side, int order_type, int64_t price,
               int64_t qty, int64_t now, Py_ssize_t n):
    """n checks of the same order; returns how many were refused."""
    cdef RiskResult r
    cdef Py_ssize_t i
    cdef Py_ssize_t refused = 0
    for i in range(n):
        if core.risk.check(owner, iid, side, order_type, 0, price, 0, qty, now, &r) != 0:
            refused += 1
    return refused


def submit_loop(ExecutionCore core, int owner, uint32_t iid, int side, int64_t price, int64_t qty,
                int64_t first_coid, int64_t now, Py_ssize_t n):
    """n submits (check + registration) with consecutive client order ids; returns how many were refused."""
    cdef RiskResult r
    cdef Py_ssize_t i
    cdef Py_ssize_t refused = 0
    for i in range(n):
        if core.submit_check(first_coid + (i << 6), owner, iid, side, 2, 1, 0, price, 0, qty, now, &r) != 0:
            refused += 1
    return refused
'''

INSTRUMENTS = [  # name, market, tick, lot, min notional, mid (user), size precision
    ("BTC_USDT", 1, "0.01", "0.00001", "5", 50_000.0),
    ("ETH_USDT", 1, "0.01", "0.0001", "5", 3_000.0),
    ("BTC_USDT_PERP", 2, "0.1", "0.001", "5", 50_010.0),
    ("ETH_USDT_PERP", 2, "0.01", "0.001", "5", 3_001.0),
]


def _median_note(t) -> str:
    return f"median of {len(t.samples)}, spread {t.spread:.0%}"


def _sized(cases: dict, target_s: float) -> dict:
    """Repeat each case's body so one timed call lasts about target_s (one preemption is not a sample)."""
    out = {}
    for name, case in cases.items():
        state = case.setup() if case.setup is not None else None
        t0 = time.perf_counter()
        case.fn(state)
        dt = max(time.perf_counter() - t0, 1e-6)
        reps = max(1, min(200, round(target_s / dt)))
        if case.setup is not None:
            # stateful cases (registrations) run once per fresh state
            out[name] = case
            continue
        out[name] = Case(lambda st, fn=case.fn, reps=reps: [fn(st) for _ in range(reps)], case.n_ops * reps)
    return out


class World:
    """One compiled ExecutionCore and one reference core holding the same state."""

    def __init__(self, extrema, R, P, method="average"):
        from extrema import InstrumentRegistry, Market, OrderBook
        self.reg = InstrumentRegistry()
        self.insts = [self.reg.register(n, Market(m), t, l, min_notional=mn) for n, m, t, l, mn, _ in INSTRUMENTS]
        self.core = extrema.ExecutionCore(self.reg, method)
        specs, refinst = {}, {}
        for inst in self.insts:
            cash = "spot" if inst.kind == 0 else "margin"
            specs[inst.id] = P.Spec(inst.price_precision, inst.size_precision, cash=cash, market=int(inst.market),
                                    base=inst.base, quote=inst.quote)
            refinst[inst.id] = R.Instrument(inst.tick_raw, inst.lot_raw, inst.min_notional_raw, int(inst.market))
        self.ref = R.ReferenceCore(specs, refinst, method)
        self.books = {}
        for inst, spec in zip(self.insts, INSTRUMENTS):
            mid = spec[5]
            tick = float(inst.tick_size)
            book = OrderBook.for_instrument(inst)
            book.apply_snapshot([(mid - tick * (k + 1), 1.0) for k in range(10)],
                                [(mid + tick * (k + 1), 1.0) for k in range(10)])
            self.core.portfolio.set_book(inst.id, book)
            self.books[inst.id] = book
            self.ref.pf.marks[inst.id] = book.best_bid_raw + book.best_ask_raw   # the reference marks at the mid
        self.next_coid = 1
        risk, rref = self.core.risk, self.ref.risk
        for scope in (0, None):
            rs = 65 if scope is None else scope
            for inst in self.insts:
                risk.set_limit("max_position", "1000", strategy=scope, instrument_id=inst.id, now=T0)
                risk.set_limit("max_order_size", "100", strategy=scope, instrument_id=inst.id, now=T0)
                big = 1000 * 10 ** inst.size_precision
                rref.set_limit("max_position", big, rs, inst.id)
                rref.set_limit("max_order_size", big // 10, rs, inst.id)
            for name, value in (("max_open_orders", 10 ** 9), ("max_exposure", 1e12), ("max_order_notional", 1e9),
                                ("daily_loss", 1e9), ("max_drawdown", 1e9), ("price_band_bps", 500),
                                ("reject_burst", (10, 1.0))):
                risk.set_limit(name, value, strategy=scope, now=T0)
                rref.set_limit(name, value, rs, now=T0)
        for market in (1, 2):
            risk.set_rate_limit(market, 1_000_000_000, 1.0)
            risk._set_bucket_clock(market, T0)
            rref.add_bucket(market, 1_000_000_000, 1.0, T0)
        # a position on every instrument (exposure and daily loss walk them)
        for inst, spec in zip(self.insts, INSTRUMENTS):
            px = int(round(spec[5] * 10 ** inst.price_precision))
            qty = 10 ** inst.size_precision // 10
            coid = self.coid()
            assert self.core.submit(0, coid, inst.id, "buy", qty, px, now=T0) is None
            self.ref.submit(coid, 0, inst.id, 0, 2, px, qty, T0)
            self.core.process(_fill(extrema, inst.id, coid, coid, px, qty, 0))
            self.ref.fill(coid, inst.id, 0, px, qty, coid)

    def coid(self, owner=0):
        self.next_coid += 1
        return (self.next_coid << 6) | owner

    def order(self):
        """The benchmark order: a BTC_USDT limit buy of 0.01 at the touch."""
        inst = self.insts[0]
        return inst.id, self.books[inst.id].best_ask_raw, 1_000


def _fill(extrema, iid, coid, trade_id, price, qty, side):
    rec = extrema.empty_records(2)
    flags = extrema.with_continuations(extrema.RecordFlag.ASK if side else 0, 1)
    rec[0] = (extrema.RecordKind.FILL, flags, iid, T0, T0, trade_id, price, qty, coid, 0)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = extrema.RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = iid
    return rec


def _updates(extrema, iid, coids, price, qty, sides, status=2):
    n = len(coids)
    arr = extrema.empty_records(2 * n)
    heads = arr[0::2]
    heads["kind"] = extrema.RecordKind.ORDER_UPDATE
    heads["flags"] = [extrema.with_continuations(extrema.RecordFlag.ASK if s else 0, 1) for s in sides]
    heads["instrument_id"] = iid
    heads["ts_exchange"] = T0
    heads["ts_local"] = T0
    heads["sequence"] = coids
    heads["price"] = price
    heads["quantity"] = qty
    cont = arr[1::2].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = extrema.RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = iid
    cont["payload"][:, 0] = status
    cont["payload"][:, 1] = 2
    cont["payload"][:, 2] = 1
    return arr


def _fills(extrema, iid, coids, first_trade, prices, qty, sides):
    n = len(coids)
    arr = extrema.empty_records(2 * n)
    heads = arr[0::2]
    heads["kind"] = extrema.RecordKind.FILL
    heads["flags"] = [extrema.with_continuations(extrema.RecordFlag.ASK if s else 0, 1) for s in sides]
    heads["instrument_id"] = iid
    heads["ts_exchange"] = T0
    heads["ts_local"] = T0
    heads["sequence"] = np.arange(first_trade, first_trade + n)
    heads["price"] = prices
    heads["quantity"] = qty
    heads["aux0"] = coids
    heads["aux1"] = 3
    cont = arr[1::2].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = extrema.RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = iid
    return arr


def run(ctx) -> list[dict]:
    try:
        import extrema
        extrema.ExecutionCore
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"risk suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    tests = str(Path(ctx.repo) / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from models import pnl_reference as P
    from models import risk_reference as R

    p = QUICK if ctx.quick else FULL
    cy, secs, cc = compile_against_extrema(CYTHON_SOURCE, "_extrema_bench_risk_cy")
    ctx.log(f"compiled the Cython callers against the installed extrema in {secs:.1f} s ({cc})")
    rows: list[dict] = []
    rows += _chain(ctx, p, extrema, R, P, cy)
    rows += _submit(ctx, p, extrema, R, P, cy)
    rows += _updates_and_fills(ctx, p, extrema, R, P)
    return rows


def _chain(ctx, p, extrema, R, P, cy) -> list:
    w = World(extrema, R, P)
    iid, price, qty = w.order()
    check = w.core.risk.check_order
    ref_check = w.ref.risk.check
    # verification: both pass the order; a 0.1 % too large price is refused by both with PRICE_BAND
    got = check(0, iid, 0, qty, price, now=T0)
    want = ref_check(0, iid, 0, 2, price, qty, T0)
    bad_px = price * 106 // 100
    got_bad = check(0, iid, 0, qty, bad_px, now=T0)
    want_bad = ref_check(0, iid, 0, 2, bad_px, qty, T0)
    if (got is not None or want[0] != R.PASSED or got_bad is None or int(got_bad.rule) != want_bad[0]
            or want_bad[0] != R.PRICE_BAND):
        ctx.note(f"MISMATCH: the benchmark order: compiled {got} / {got_bad}, reference {want} / {want_bad}; "
                 "chain figures not posted")
        return []
    refused = cy.check_loop(w.core, 0, iid, 0, 2, price, qty, T0, 1000)
    if refused:
        ctx.note(f"MISMATCH: the Cython loop saw {refused} refusals of 1000; chain figures not posted")
        return []
    n = p["n"]
    env = {"check": check, "iid": iid, "price": price, "qty": qty, "T0": T0, "ref_check": ref_check,
           "core": w.core, "loop": cy.check_loop}
    cases = {
        "py": unrolled("check(0, iid, 0, qty, price, now=T0)", env, n=n // 10),
        "cy": Case(lambda _: cy.check_loop(w.core, 0, iid, 0, 2, price, qty, T0, n), n),
        "ref": unrolled("ref_check(0, iid, 0, 2, price, qty, T0)", env, n=max(n // 200, 50), unroll=2),
    }
    t = ctx.measure(_sized(cases, p["call_s"]))
    py, cyt, ref = t["py"], t["cy"], t["ref"]
    ref_label = "plain-Python reference of the same rules (tests/models/risk_reference.py)"
    common = ("15 rules for the strategy and globally, order passing all of them; 4 instruments with positions "
              "marked from live books; limit buy 0.01 BTC_USDT at the touch")
    rows = [
        ctx.row("full pre-trade chain from Python (risk.check_order, per order)", py.median, "ns/order",
                ref_label, ref.median, target=f"< {TARGET_NS:.0f} ns", target_met=py.median < TARGET_NS,
                note=f"{common}; {_median_note(py)}"),
        ctx.row("full pre-trade chain from Cython (risk.check, per order)", cyt.median, "ns/order",
                ref_label, ref.median, target=f"< {TARGET_NS:.0f} ns", target_met=cyt.median < TARGET_NS,
                note=f"{common}; a C loop in a module compiled against the installed package; {_median_note(cyt)}"),
    ]
    # the floor: an order stopped by the first rule
    w.core.risk.kill(1)
    env["check"] = check
    tk = ctx.measure(_sized({"kill": unrolled("check(1, iid, 0, qty, price, now=T0)", env, n=n // 10)}, p["call_s"]))
    rows.append(ctx.row("early rejection from Python (kill switch, per order)", tk["kill"].median, "ns/order",
                        note=f"the call's floor: argument parsing, the first rule, the RiskRejection object; "
                             f"{_median_note(tk['kill'])}"))
    return rows


def _submit(ctx, p, extrema, R, P, cy) -> list:
    n = p["single"]
    worlds = {}

    def fresh(key):
        def setup():
            w = World(extrema, R, P)
            worlds[key] = w
            return w
        return setup

    def py_submit(w):
        submit = w.core.submit
        iid, price, qty = w.order()
        base = 1 << 20
        for i in range(n):
            submit(0, ((base + i) << 6), iid, 0, qty, price, now=T0)

    def cy_submit(w):
        iid, price, qty = w.order()
        cy.submit_loop(w.core, 0, iid, 0, price, qty, (1 << 26), T0, n)

    cases = {"py": Case(py_submit, n, fresh("py")), "cy": Case(cy_submit, n, fresh("cy"))}
    t = ctx.measure(cases)
    for key, want in (("py", n), ("cy", n)):
        w = worlds[key]
        if w.core.orders.open_count(0) != want:
            ctx.note(f"MISMATCH: {key} submit registered {w.core.orders.open_count(0)} of {want}; not posted")
            return []
    # no baseline here: the reference order table scans every order for its open quantities (it is an
    # oracle, not a data structure), so its cost per order grows with the number of orders
    note = (f"{n:,} new orders per repeat on a fresh core: the chain (open orders grow, so the exposure and "
            f"position rules see them) + registration as SUBMITTED in the order table")
    return [
        ctx.row("submit: chain + registration from Python (core.submit, per order)", t["py"].median, "ns/order",
                note=f"{note}; {_median_note(t['py'])}"),
        ctx.row("submit: chain + registration from Cython (submit_check, per order)", t["cy"].median, "ns/order",
                note=f"{note}; {_median_note(t['cy'])}"),
    ]


def _updates_and_fills(ctx, p, extrema, R, P) -> list:
    """Updates and fills cycling over LIVE orders (a cache-resident table, the usual case), and fills over
    `batch` distinct orders (a table larger than the caches: each fill misses)."""
    n = p["batch"]
    live = 1_000
    rows = []
    state = {}

    def world(method, key, n_orders, per_order):
        def setup():
            w = World(extrema, R, P, method)
            iid, price, qty = w.order()
            coids = np.array([((1 << 24) + i) << 6 for i in range(n_orders)], dtype=np.int64)
            sides = [i % 2 for i in range(n_orders)]
            for c, sd in zip(coids, sides):
                w.core.orders.register(int(c), iid, sd, qty * per_order, price, submitted=True, ts=T0)
            cyc = np.resize(coids, n)                     # order k % n_orders gets the k-th update / fill
            cyc_sides = [sides[k % n_orders] for k in range(n)]
            # ACCEPTED updates that amend the price every round (so each one is applied, none a duplicate)
            upd = _updates(extrema, iid, cyc, [price + (k // n_orders) % 2 for k in range(n)], qty * per_order,
                           cyc_sides)
            fl = _fills(extrema, iid, cyc, 10_000_000, [price + (k % 7) - 3 for k in range(n)], qty, cyc_sides)
            state[key] = (w, cyc, upd, fl, iid)
            return state[key]
        return setup

    per = n // live + 1
    cases = {"upd": Case(lambda st: st[0].core.process(st[2]), n, world("average", "upd", live, per)),
             "fill_avg": Case(lambda st: st[0].core.process(st[3]), n, world("average", "fill_avg", live, per)),
             "fill_fifo": Case(lambda st: st[0].core.process(st[3]), n, world("fifo", "fill_fifo", live, per)),
             "fill_cold": Case(lambda st: st[0].core.process(st[3]), n, world("average", "fill_cold", n, 1))}
    t = ctx.measure(cases)
    upd_stats = state["upd"][0].core.orders.stats()["updates"]
    if upd_stats != {"ok": n}:
        ctx.note(f"MISMATCH: update batch gave {upd_stats}, expected {n} applied; not posted")
        return []
    for key in ("fill_avg", "fill_fifo", "fill_cold"):
        stats = state[key][0].core.orders.stats()
        if stats["fills"].get("ok", 0) != n + len(INSTRUMENTS):     # + the World's position fills
            ctx.note(f"MISMATCH: {key}: {stats['fills']} fills applied of {n}; fill figures not posted")
            return []

    # the reference: the same fills over `live` orders, timed on its own (one call per repeat)
    def ref_fills():
        w, cyc, _, _, iid = state["fill_avg"]
        ref = R.ReferenceCore(w.ref.pf.specs, w.ref.risk.instruments, "average")
        _, price, qty = w.order()
        m = max(n // 20, 50)
        for k in range(live):
            ref.table.register(int(cyc[k]), iid, k % 2, qty * per, price, submitted=True)
        t0 = time.perf_counter_ns()
        for k in range(m):
            ref.fill(int(cyc[k]), iid, k % live % 2, price + (k % 7) - 3, qty, 10_000_000 + k)
        return (time.perf_counter_ns() - t0) / m

    ref_ns = sorted(ref_fills() for _ in range(ctx.repeats))
    ref_med = ref_ns[len(ref_ns) // 2]
    single = [state["upd"][2][2 * k:2 * k + 2] for k in range(min(p["single"], n))]

    def one_by_one(st):
        process = st[0].core.process
        for rec in single:
            process(rec)
    t1 = ctx.measure({"single": Case(one_by_one, len(single), world("average", "single", live, per))})
    ref_label = "plain-Python reference (order state + P&L models)"
    rows.append(ctx.row("ORDER_UPDATE through the state machine, batch (core.process, per record)", t["upd"].median,
                        "ns/update", note=f"{n:,} ACCEPTED updates amending the price of {live:,} live orders in "
                                          f"turn, each applied; {_median_note(t['upd'])}"))
    rows.append(ctx.row("ORDER_UPDATE, one record per core.process call from Python", t1["single"].median,
                        "ns/update", note=f"{len(single):,} calls of 2-slot arrays; {_median_note(t1['single'])}; "
                                          "includes the numpy argument check"))
    common = ("each checked against the trade-id set (remembered, the oldest forgotten past 100,000), applied to "
              "the order, to the strategy's and the venue's position (P&L realised as they go up and down), fees "
              "and balances")
    for key, method in (("fill_avg", "average cost"), ("fill_fifo", "FIFO")):
        rows.append(ctx.row(f"FILL through state machine + portfolio ({method}), batch (per fill)", t[key].median,
                            "ns/fill", ref_label if key == "fill_avg" else None,
                            ref_med if key == "fill_avg" else None,
                            note=f"{n:,} fills cycling over {live:,} live orders (buys and sells), {common}; "
                                 f"{_median_note(t[key])}"))
    rows.append(ctx.row("FILL, average cost, over 100k+ distinct orders (table beyond the caches, per fill)",
                        t["fill_cold"].median, "ns/fill",
                        note=f"{n:,} fills of {n:,} distinct orders: every order lookup and trade-id insert misses "
                             f"the caches; {_median_note(t['fill_cold'])}"))
    return rows
