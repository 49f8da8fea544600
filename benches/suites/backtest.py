"""Backtest suite: the same L2 + trade data and the same trivial market maker in four backtesters.

Contenders (one run, interleaved rounds, so the ratios come from the same conditions):

* extrema, Python strategy: `extrema.backtest.Backtest` (the engine, dispatcher, risk and portfolio that
  run live, against the compiled simulated exchange) with an `extrema.Strategy` written in Python;
* extrema, Cython strategy: the same with the strategy compiled against the installed extrema
  (benches/peers/compile_cython.py), its hooks called through the vtable;
* NautilusTrader's BacktestEngine with a Python Strategy (benches/peers/nautilus_backtest.py);
* hftbacktest with its compiled (numba @njit) strategy (benches/peers/hftbacktest_peer.py).

Data: benches/workloads/backtest_data.py generates the stream once (seeded; 1M events, 100k with
--quick) and converts it to each framework's input; the three conversions are checked to carry the same
events before anything is timed (a mismatch stops the run).

The logic (MM_PARAMS, the same in all four): on every book update, with no resting order, quote one bid
k ticks below the best bid and one ask k ticks above the best ask, size fixed, a side skipped when the
position is at the limit on that side; when the mid has moved more than m ticks from where the quotes
were placed, cancel them (the next quotes follow once both are gone). Order entry and response latency
100 µs each, zero fees, conservative queue position, partial fills allowed.

Peak memory: after the timing, each contender runs once more alone in a child process
(`python suites/backtest.py --probe WHO N SEED`), which reports how far its resident set rose above what
it held with the input loaded (VmHWM after clearing it); a contender that runs out of memory or hangs
takes only its child down.

Figure: events per second = input market events (level updates + trades) / wall time of the replay
(building the engine and loading the data are not timed; hftbacktest's numba compile happens in an
untimed warm-up run). Rows also give each framework's wall time and its orders / cancels / fills, so the
reader sees they did comparable work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

if __name__ == "__main__":          # run as a probe child: the benches directory holds harness / peers
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import Case
from peers import hftbacktest_peer, nautilus_backtest
from workloads import backtest_data as data

PEERS = ["nautilus-trader==1.221.0", "hftbacktest==2.4.4"]

FULL_EVENTS = 1_000_000
QUICK_EVENTS = 100_000
MM_PARAMS = dict(k_ticks=1, size_lots=10, requote_ticks=3, max_position_lots=50)
ENTRY_US = 100
RESPONSE_US = 100

PY_MM = "extrema, Python strategy"
CY_MM = "extrema, Cython strategy"
NAUTILUS = "NautilusTrader BacktestEngine, Python strategy"
HFT = "hftbacktest, numba @njit strategy"


# ------------------------------------------------------------------------------ extrema strategies

def python_strategy_class():
    from extrema import OrderStatus, Strategy

    terminal = frozenset(int(s) for s in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
                                          OrderStatus.EXPIRED))

    class PyMarketMaker(Strategy):
        """The suite's market maker as a plain Python extrema strategy."""

        def __init__(self, instrument, *, k_ticks, size_lots, requote_ticks, max_position_lots,
                     price_precision=data.PRICE_PRECISION, size_precision=data.SIZE_PRECISION):
            super().__init__("mm_python")
            self.instrument = instrument
            self.k = k_ticks
            self.m2 = 2 * requote_ticks               # mid moves compared as bid + ask (half ticks)
            self.size = Decimal(size_lots).scaleb(-size_precision)
            self.max_lots = max_position_lots
            self.pp = price_precision
            self.lots_per_unit = 10 ** size_precision
            self.bid = self.ask = 0                   # live client order ids (0: none)
            self.dead = 0                             # the latest order that ended (see _submit)
            self.quoted = 0
            self.cancelling = False
            self.position_lots = 0
            self.books = self.orders = self.cancels = self.fills = 0

        def on_start(self):
            self.context.subscribe(self.instrument, "book")

        def _submit(self, side, price_raw):
            oid = self.context.submit(self.instrument, side, self.size, Decimal(price_raw).scaleb(-self.pp))
            self.orders += 1
            # an order the pre-trade checks refuse arrives in on_order before submit returns
            return 0 if oid == self.dead else oid

        def on_book(self, view):
            self.books += 1
            book = view.book
            bb = book.best_bid_raw
            ba = book.best_ask_raw
            if bb is None or ba is None:
                return
            if self.bid or self.ask:
                if not self.cancelling and abs(bb + ba - self.quoted) > self.m2:
                    self.cancelling = True
                    cancel = self.context.cancel
                    for oid in (self.bid, self.ask):
                        if oid:
                            cancel(oid)
                            self.cancels += 1
                return
            self.cancelling = False
            self.quoted = bb + ba
            if self.position_lots < self.max_lots:
                self.bid = self._submit("buy", bb - self.k)
            if self.position_lots > -self.max_lots:
                self.ask = self._submit("sell", ba + self.k)

        def on_order(self, order):
            if int(order.status) in terminal:
                oid = order.client_order_id
                self.dead = oid
                if oid == self.bid:
                    self.bid = 0
                elif oid == self.ask:
                    self.ask = 0

        def on_fill(self, fill):
            self.fills += 1
            lots = round(fill.quantity * self.lots_per_unit)
            self.position_lots += lots if fill.side == "buy" else -lots

    return PyMarketMaker


CYTHON_SOURCE = r'''
# cython: language_level=3, boundscheck=False, wraparound=False
"""The suite's market maker as a Cython extrema strategy: book, order and fill hooks read the records
and the engine's book through the vtable; only placing / cancelling an order is a Python call."""
from decimal import Decimal
from libc.stdint cimport int64_t
cimport extrema
from extrema cimport Strategy, BookView, Record, OrderBook
from extrema._core.strategy cimport OrderView, FillView


cdef class CyMarketMaker(Strategy):
    cdef public object instrument
    cdef public object size
    cdef int64_t k, m2, max_lots, quoted
    cdef int pp
    cdef public int64_t bid, ask, dead, position_lots, books, orders, cancels, fills
    cdef bint cancelling

    def __init__(self, instrument, *, k_ticks, size_lots, requote_ticks, max_position_lots,
                 price_precision=2, size_precision=3):
        super().__init__("mm_cython")
        self.instrument = instrument
        self.k = k_ticks
        self.m2 = 2 * requote_ticks
        self.size = Decimal(size_lots).scaleb(-size_precision)
        self.max_lots = max_position_lots
        self.pp = price_precision

    cpdef on_start(self):
        self.context.subscribe(self.instrument, "book")

    cdef int64_t _submit(self, str side, int64_t price_raw) except? -1:
        oid = self.context.submit(self.instrument, side, self.size, Decimal(price_raw).scaleb(-self.pp))
        self.orders += 1
        return 0 if oid == self.dead else oid

    cpdef on_book(self, BookView view):
        cdef OrderBook book = view.book
        cdef int64_t bb, ba
        self.books += 1
        if not book.has_best(0) or not book.has_best(1):
            return
        bb = book.best_price_raw(0)
        ba = book.best_price_raw(1)
        if self.bid or self.ask:
            if not self.cancelling and abs(bb + ba - self.quoted) > self.m2:
                self.cancelling = True
                if self.bid:
                    self.context.cancel(self.bid)
                    self.cancels += 1
                if self.ask:
                    self.context.cancel(self.ask)
                    self.cancels += 1
            return
        self.cancelling = False
        self.quoted = bb + ba
        if self.position_lots < self.max_lots:
            self.bid = self._submit("buy", bb - self.k)
        if self.position_lots > -self.max_lots:
            self.ask = self._submit("sell", ba + self.k)

    cpdef on_order(self, OrderView order):
        cdef const Record *r = order.record_ptr()
        cdef int64_t status = r[1].ts_exchange        # ORDER_UPDATE continuation p0 (records.pyx)
        cdef int64_t oid
        if (status == extrema.ORDER_STATUS_FILLED or status == extrema.ORDER_STATUS_CANCELLED
                or status == extrema.ORDER_STATUS_REJECTED or status == extrema.ORDER_STATUS_EXPIRED):
            oid = r.sequence
            self.dead = oid
            if oid == self.bid:
                self.bid = 0
            elif oid == self.ask:
                self.ask = 0

    cpdef on_fill(self, FillView fill):
        cdef const Record *r = fill.record_ptr()
        self.fills += 1
        if r.flags & extrema.FLAG_ASK:
            self.position_lots -= r.quantity
        else:
            self.position_lots += r.quantity
'''


def cython_strategy_class():
    from peers.compile_cython import compile_against_extrema

    module, seconds, cmd = compile_against_extrema(CYTHON_SOURCE, "bench_backtest_mm")
    return module.CyMarketMaker, seconds, cmd


# --------------------------------------------------------------------------------- extrema runs

def extrema_build(stream, records, strategy_cls, params):
    """A ready Backtest (untimed). The records' instrument id is the one the fresh registry assigns."""
    from extrema import InstrumentRegistry, Market
    from extrema.backtest import Backtest, ConservativeQueue, DataLatency, Fees

    registry = InstrumentRegistry()
    registry.register(data.INSTRUMENT, Market.BINANCE_SPOT, data.TICK, data.LOT)
    strategy = strategy_cls(data.INSTRUMENT, **params)
    bt = Backtest(registry, records, [strategy], latency=DataLatency(entry_us=ENTRY_US, response_us=RESPONSE_US),
                  queue=ConservativeQueue(), fees=Fees(maker=0.0, taker=0.0),
                  balances={"USDT": 1_000_000, "ETH": 1_000}, progress=False)
    return bt, strategy


def extrema_run(state) -> dict:
    bt, strategy = state
    t0 = time.perf_counter()
    result = bt.run()
    wall = time.perf_counter() - t0
    return dict(wall_s=wall, orders=int(strategy.orders), cancels=int(strategy.cancels), fills=len(result.fills),
                book_callbacks=int(strategy.books), position_lots=int(strategy.position_lots),
                events=int(result.meta.get("events", -1)),
                rejected=int(result.meta.get("exchange", {}).get("rejects", 0)))


def extrema_instrument_id() -> int:
    from extrema import InstrumentRegistry, Market

    return InstrumentRegistry().register(data.INSTRUMENT, Market.BINANCE_SPOT, data.TICK, data.LOT).id



# ------------------------------------------------------------------------------------- peak memory

PROBES = {PY_MM: "py", CY_MM: "cy", NAUTILUS: "nautilus", HFT: "hftbacktest"}
PROBE_TIMEOUT_S = 600


def _rss_mb() -> dict:
    """VmRSS / VmHWM (peak resident set) of this process, MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return out


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def probe(who: str, n_events: int, seed: int) -> dict:
    """One contender's run in this (fresh) process: its input built, the peak resident set reset, one
    backtest, the peak measured. `input_mb` is the framework's input as handed over; `run_peak_mb` is how
    far the resident set rose above what the process held before the backtest was built (engine, data
    loading, the replay, its results)."""
    stream = data.generate(n_events, seed)
    lot, tick = 10.0 ** -data.SIZE_PRECISION, 10.0 ** -data.PRICE_PRECISION
    if who in ("py", "cy"):
        records = data.to_extrema(stream, extrema_instrument_id())
        cls = python_strategy_class() if who == "py" else cython_strategy_class()[0]
        input_mb = records.nbytes / 2**20
        del stream
        base = _rss_mb()["VmRSS"]
        _reset_hwm()
        work = extrema_run(extrema_build(None, records, cls, MM_PARAMS))
    elif who == "nautilus":
        inst = data.nautilus_instrument()
        nd = data.to_nautilus(stream, inst)
        input_mb = None                        # Python objects: their share of the RSS is not separable
        del stream
        base = _rss_mb()["VmRSS"]
        _reset_hwm()
        work = nautilus_backtest.run(nautilus_backtest.build(nd, inst, MM_PARAMS, entry_latency_us=ENTRY_US))
    else:
        ev, roi = data.to_hftbacktest(stream), _roi(stream)
        input_mb = ev.nbytes / 2**20
        del stream

        def build(events):
            return hftbacktest_peer.build(events, tick=tick, lot=lot, entry_latency_us=ENTRY_US,
                                          response_latency_us=RESPONSE_US, roi=roi, partial_fills=False)
        warm = ev[:2_000].copy()
        hftbacktest_peer.run(build(warm), MM_PARAMS, lot=lot)          # numba compiles outside the peak
        base = _rss_mb()["VmRSS"]
        _reset_hwm()
        work = hftbacktest_peer.run(build(ev), MM_PARAMS, lot=lot)
    peak = _rss_mb()["VmHWM"]
    return dict(who=who, input_mb=input_mb, base_mb=base, peak_mb=peak, run_peak_mb=peak - base,
                orders=work["orders"], fills=work["fills"])


def probe_in_subprocess(name: str, n_events: int, seed: int) -> dict:
    """probe() in a child process, so a contender that exhausts memory or hangs takes only its child down."""
    cmd = [sys.executable, __file__, "--probe", PROBES[name], str(n_events), str(seed)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              cwd=str(Path(__file__).resolve().parent.parent))
    except subprocess.TimeoutExpired:
        return dict(error=f"no answer in {PROBE_TIMEOUT_S} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return dict(error=f"exit status {proc.returncode}: {tail}")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------------- suite

def _roi(stream):
    lo = int(stream.price.min()) / 10 ** data.PRICE_PRECISION
    hi = int(stream.price.max()) / 10 ** data.PRICE_PRECISION
    return (max(0.0, lo - 0.5 * (hi - lo) - 1.0), hi + 0.5 * (hi - lo) + 1.0)


def _work_note(w: dict) -> str:
    parts = [f"{w['orders']:,} orders", f"{w['cancels']:,} cancels", f"{w['fills']:,} fills",
             f"{w['book_callbacks']:,} book callbacks", f"final position {w['position_lots']:+,} lots"]
    if w.get("rejected"):
        parts.append(f"{w['rejected']:,} venue rejections")
    return ", ".join(parts)


def run(ctx) -> list[dict]:
    n_events = QUICK_EVENTS if ctx.quick else FULL_EVENTS
    t0 = time.perf_counter()
    stream = data.generate(n_events, ctx.seed)
    ctx.log(f"data: {stream.describe()} (generated in {time.perf_counter() - t0:.1f} s)")
    n = len(stream)
    lot = 10.0 ** -data.SIZE_PRECISION
    tick = 10.0 ** -data.PRICE_PRECISION

    # ---- the inputs, checked to carry the same events
    inputs, cases, work = {}, {}, {}
    extrema_error = None
    try:
        import extrema.backtest  # noqa: F401
        inputs["extrema"] = data.to_extrema(stream, extrema_instrument_id())
    except Exception as exc:  # noqa: BLE001 - reported, and the peers are still measured
        extrema_error = f"{type(exc).__name__}: {exc}"
        ctx.note(f"extrema.backtest is not usable here ({extrema_error}): the extrema rows are left empty")
    if nautilus_backtest.AVAILABLE:
        n_inst = data.nautilus_instrument()
        inputs["nautilus"] = data.to_nautilus(stream, n_inst)
    else:
        ctx.note(f"NautilusTrader not importable ({nautilus_backtest.IMPORT_ERROR}); pip install {PEERS[0]}")
    if hftbacktest_peer.AVAILABLE:
        inputs["hftbacktest"] = data.to_hftbacktest(stream)
    else:
        ctx.note(f"hftbacktest not importable ({hftbacktest_peer.IMPORT_ERROR}); pip install {PEERS[1]}")
    problems = data.check_conversions(stream, extrema=inputs.get("extrema"), nautilus=inputs.get("nautilus"),
                                      hftbacktest=inputs.get("hftbacktest"))
    if problems:
        raise SystemExit("backtest suite: the frameworks' inputs differ:\n  " + "\n  ".join(problems))
    ctx.log(f"inputs checked: {', '.join(inputs)} carry the same {n:,} events")

    def case(name, build, run_one):
        work[name] = []

        def fn(state):
            work[name].append(run_one(state))
        cases[name] = Case(fn, n, setup=build)

    # ---- contenders
    if "extrema" in inputs:
        records = inputs["extrema"]
        try:
            py_cls = python_strategy_class()
            case(PY_MM, lambda: extrema_build(stream, records, py_cls, MM_PARAMS), extrema_run)
            cy_cls, secs, cmd = cython_strategy_class()
            ctx.log(f"Cython strategy compiled in {secs:.1f} s ({cmd})")
            case(CY_MM, lambda: extrema_build(stream, records, cy_cls, MM_PARAMS), extrema_run)
            # one short untimed run: a broken backtest fails here, before minutes of timing
            extrema_run(extrema_build(stream, records[:2_000], py_cls, MM_PARAMS))
        except Exception as exc:  # noqa: BLE001
            extrema_error = f"{type(exc).__name__}: {exc}"
            ctx.note(f"extrema backtest failed ({extrema_error}): the extrema rows are left empty")
            cases.pop(PY_MM, None)
            cases.pop(CY_MM, None)
    if "nautilus" in inputs:
        nd = inputs["nautilus"]
        case(NAUTILUS, lambda: nautilus_backtest.build(nd, n_inst, MM_PARAMS, entry_latency_us=ENTRY_US),
             nautilus_backtest.run)
    if "hftbacktest" in inputs:
        ev, roi = inputs["hftbacktest"], _roi(stream)

        def hft_build(events=ev):
            # partial_fills=False: hftbacktest 2.4.4's PartialFillExchange stops this stream with
            # InvalidOrderStatus (wait_next_feed() = 14, ~135k feeds into the 1M run: it fills an order it
            # already reported filled); its NoPartialFillExchange runs it to the end
            return hftbacktest_peer.build(events, tick=tick, lot=lot, entry_latency_us=ENTRY_US,
                                          response_latency_us=RESPONSE_US, roi=roi, partial_fills=False)

        t = time.perf_counter()
        warm = ev[:2_000].copy()        # hftbacktest reads the array by address: it must outlive the run
        hftbacktest_peer.run(hft_build(warm), MM_PARAMS, lot=lot)        # numba compiles here
        ctx.log(f"hftbacktest strategy compiled (numba) in {time.perf_counter() - t:.1f} s")
        case(HFT, hft_build, lambda hbt: hftbacktest_peer.run(hbt, MM_PARAMS, lot=lot))

    # ---- timing: every contender replays the whole stream once per round; Nautilus takes ~1 min per
    # round at 1M events, so the suite caps the rounds at 3 (2 with --quick)
    repeats = min(ctx.repeats, 2 if ctx.quick else 3)
    ctx.log(f"timing {', '.join(cases)}: {repeats} interleaved rounds of {n:,} events each")
    timings = ctx.measure(cases, repeats=repeats, warmup=0)
    eps = {name: t.per_second * 1.0 for name, t in timings.items()}   # n_ops = events: 1e9 / ns-per-event

    for name, runs in work.items():
        if not runs:
            continue
        first = runs[0]
        for r in runs[1:]:
            if any(r[k] != first[k] for k in ("orders", "cancels", "fills")):
                ctx.note(f"MISMATCH: {name} did different work in different rounds: {first} vs {r}")
        if "events" in first and first["events"] != n:
            ctx.note(f"MISMATCH: {name} replayed {first['events']:,} market events, the stream has {n:,}")

    rows = []
    spread = {name: f"spread {t.spread:.0%} over {len(t.samples)} rounds" for name, t in timings.items()}

    def pair(ext, peer, target=None, met=None):
        if ext not in eps:
            rows.append(ctx.row(f"events/s, {ext}", float("nan"), "events/s", peer if peer in eps else None,
                                eps.get(peer), lower_is_better=False, target=target,
                                note=f"not measured: {extrema_error}"))
            return
        v, p = eps[ext], eps.get(peer)
        rows.append(ctx.row(f"events/s, {ext}", v, "events/s", peer if p is not None else None, p,
                            lower_is_better=False, target=target,
                            target_met=(met(v, p) if (met and p is not None) else None),
                            note=f"{n:,} events; {spread[ext]}" + (f"; peer {spread[peer]}" if p else "")))

    pair(PY_MM, NAUTILUS, ">= 10x NautilusTrader", lambda v, p: v >= 10 * p)
    pair(CY_MM, HFT, ">= hftbacktest", lambda v, p: v >= p)
    pair(PY_MM, HFT)
    pair(CY_MM, NAUTILUS)
    for name in (PY_MM, CY_MM, NAUTILUS, HFT):
        if name in timings:
            w = work[name][-1]
            rows.append(ctx.row(f"wall time, {name}", timings[name].median * n / 1e9, "s",
                                note=f"{eps[name]:,.0f} events/s; {_work_note(w)}"))
    for name in (PY_MM, CY_MM, NAUTILUS, HFT):
        if name in work and work[name]:
            w = work[name][-1]
            rows.append(ctx.row(f"orders placed, {name}", w["orders"], "orders", note=_work_note(w)))
            rows.append(ctx.row(f"fills, {name}", w["fills"], "fills"))

    # ---- peak memory: each contender once more, alone in a child process (untimed)
    for name in (PY_MM, CY_MM, NAUTILUS, HFT):
        if name not in cases:
            continue
        m = probe_in_subprocess(name, n_events, ctx.seed)
        if "error" in m:
            ctx.note(f"peak memory of {name} not measured: {m['error']}")
            continue
        inp = f"input {m['input_mb']:.0f} MB, " if m["input_mb"] is not None else ""
        ctx.log(f"memory, {name}: {inp}peak RSS {m['peak_mb']:.0f} MB, +{m['run_peak_mb']:.0f} MB for the run")
        rows.append(ctx.row(f"peak RSS above the loaded input, {name}", m["run_peak_mb"], "MB",
                            note=f"{inp}process peak {m['peak_mb']:.0f} MB (child process; {m['orders']:,} orders, "
                                 f"{m['fills']:,} fills)"))
    return rows


if __name__ == "__main__":
    # the child side of probe_in_subprocess: python suites/backtest.py --probe WHO N SEED
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))), flush=True)
    else:
        raise SystemExit("usage: python suites/backtest.py --probe py|cy|nautilus|hftbacktest N_EVENTS SEED")
