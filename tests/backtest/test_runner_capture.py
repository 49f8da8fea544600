"""A backtest over a real Binance USD-M capture (../shared/fixtures/binance/captures, depth + bookTicker +
aggTrade + kline streams of four symbols, with the REST depth snapshots taken while recording).

The capture is decoded as the live adapter does it (BinanceDecoder -> DepthSync, the snapshot delivered
when it was recorded, the diffs buffered before it published with it) into one record stream, and a
market-making strategy runs over it through Backtest. The books the strategy sees after every message and
the simulated exchange's books at the end must equal the plain-Python reference book built by Binance's
documented sync rule (tests/models/binance_depth.py); the strategy's orders, fills, position and P&L must
reconcile with one another.
"""
import json
from decimal import Decimal

import numpy as np
import pytest

import extrema
from extrema import RECORD_DTYPE, BookSide, InstrumentRegistry, Market, OrderStatus, Strategy
from extrema._core.binance import BinanceDecoder, DepthSync, SyncStatus
from extrema.backtest import Backtest, ConstantLatency, Fees, ProbabilisticQueue
from models.binance_depth import ASK, BID, CAPTURES, USDM, replay_capture
from models.reference_book import ReferenceBook, to_raw


def capture_records(captures, registry, ids):
    """The USD-M capture as one RECORD_DTYPE stream in nondecreasing ts_local (µs)."""
    ws_name, http_name = CAPTURES[USDM]
    snapshots = {}
    for line in (captures / http_name).read_text().splitlines():
        entry = json.loads(line)
        snapshots[entry["url"].split("symbol=")[1].split("&")[0]] = (int(entry["ts"] * 1e6), entry["raw"])
    decoder = BinanceDecoder(registry, Market.BINANCE_USDM)
    sync = DepthSync(Market.BINANCE_USDM)
    requested, out = set(), []

    def publish(records, ts):
        records = records.copy()
        # buffered diffs published with their snapshot become usable when the snapshot arrives
        records["ts_local"] = np.maximum(records["ts_local"], ts)
        out.append(records)

    for line in (captures / ws_name).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] != "recv":
            continue
        ts = int(entry["ts"] * 1e6)
        for symbol, (snap_ts, body) in list(snapshots.items()):
            if snap_ts <= ts and ids[symbol] in requested:
                status, emit = sync.snapshot(decoder.decode_depth_snapshot(body, symbol, snap_ts))
                assert status == SyncStatus.SYNCED, (symbol, status)
                publish(emit, snap_ts)
                del snapshots[symbol]
        records = decoder.decode(entry["raw"].encode(), ts)
        status, emit = sync.accept(records, decoder)
        if status == SyncStatus.NEED_SNAPSHOT:
            requested.add(decoder.info["instrument_id"])
        assert status != SyncStatus.GAP
        if status == SyncStatus.EMIT and len(emit):
            publish(emit, ts)
    assert not snapshots, f"snapshots never used: {sorted(snapshots)}"
    stream = np.concatenate(out)
    assert np.all(np.diff(stream["ts_local"]) >= 0)
    return stream


def reference_states(replay):
    """[(update id, (bids, asks))] of the reference book after the snapshot and after every in-sync diff (a
    USD-M first diff may end at the snapshot's own id), and the final (bids, asks)."""
    pp, sp = replay.price_precision, replay.size_precision
    ref = ReferenceBook(pp, sp)
    snap = replay.snapshot
    ref.apply_snapshot([(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.bids],
                       [(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.asks],
                       snap.last_update_id)
    states = [(snap.last_update_id, (ref.levels(BID), ref.levels(ASK)))]
    for diff in replay.applied:
        for i, (side, price, size) in enumerate(diff.changes):
            ref.apply_delta(side, to_raw(Decimal(price), pp), to_raw(Decimal(size), sp), diff.final_update_id,
                            last=i == len(diff.changes) - 1)
        states.append((diff.final_update_id, (ref.levels(BID), ref.levels(ASK))))
    return states, (ref.levels(BID), ref.levels(ASK))


def levels(book):
    return ([(int(p), int(q)) for p, q in book.levels(BookSide.BID, raw=True)],
            [(int(p), int(q)) for p, q in book.levels(BookSide.ASK, raw=True)])


class CaptureMaker(Strategy):
    """Quotes the touch on every instrument (re-quoted every few book messages), crosses the spread with a
    market order now and then, and keeps a copy of every book it is shown."""

    def __init__(self, instruments):
        super().__init__("capture_mm")
        self.instruments = instruments        # name -> Instrument
        self.n = {}
        self.books = []                       # (instrument id, update id, levels)
        self.fills = []

    def on_start(self):
        for name in self.instruments:
            self.context.subscribe(name, "book", "trades")

    def on_book(self, view):
        b = view.book
        self.books.append((view.instrument_id, view.update_id, levels(b)))
        inst = self.instruments[view.instrument]
        n = self.n[inst.name] = self.n.get(inst.name, 0) + 1
        if b.best_bid_raw is None or b.best_ask_raw is None:
            return
        lot = Decimal(inst.lot_raw).scaleb(-inst.size_precision)
        px = lambda raw: Decimal(raw).scaleb(-inst.price_precision)     # noqa: E731
        if n % 5 == 1:
            for coid in self.context.open_orders(inst.name):
                self.context.cancel(coid)
            self.context.submit(inst.name, "buy", lot * 20, px(b.best_bid_raw))
            self.context.submit(inst.name, "sell", lot * 20, px(b.best_ask_raw))
        if n % 37 == 0:
            self.context.submit(inst.name, "buy" if (n // 37) % 2 else "sell", lot * 7, order_type="market")

    def on_fill(self, fill):
        self.fills.append(fill.client_order_id)


@pytest.fixture(scope="module")
def capture(fixtures_dir):
    captures = fixtures_dir / "binance" / "captures"
    replays = replay_capture(captures, USDM)
    registry = InstrumentRegistry()
    ids, instruments = {}, {}
    for symbol, r in sorted(replays.items()):
        inst = registry.register(f"{symbol[:-4]}_USDT_PERP", Market.BINANCE_USDM, f"1e-{r.price_precision}",
                                 f"1e-{r.size_precision}", venue_symbol=symbol)
        ids[symbol] = inst.id
        instruments[inst.name] = inst
    return registry, ids, instruments, replays, capture_records(captures, registry, ids)


def test_capture_backtest_books_and_accounts(capture):
    registry, ids, instruments, replays, stream = capture
    s = CaptureMaker(instruments)
    capital = 100_000.0
    bt = Backtest(registry, stream, [s], latency=ConstantLatency(feed_us=2_000, entry_us=5_000, response_us=5_000),
                  queue=ProbabilisticQueue(), fees=Fees(maker=0.0002, taker=0.0004), balances={"USDT": capital},
                  equity_interval_us=10_000_000)
    res = bt.run()
    assert res.meta["events"] == int((stream["kind"] != extrema.RecordKind.CONTINUATION).sum())   # klines: 2 slots
    assert res.meta["exchange"]["dropped_unknown_instrument"] == 0

    # The books: what the strategy saw after every message, and the exchange's at the end.
    seen_per_symbol = {}
    for symbol, replay in replays.items():
        iid = ids[symbol]
        states, last = reference_states(replay)
        mine = [(uid, lv) for i, uid, lv in s.books if i == iid]
        assert [uid for uid, _ in mine] == [uid for uid, _ in states], symbol    # every message, once, in order
        for (uid, lv), (_, want) in zip(mine, states):
            assert lv == want, f"{symbol}: the strategy's book differs after update {uid}"
        assert levels(bt.sim.book(iid)) == last, f"{symbol}: the simulated exchange's book differs at the end"
        seen_per_symbol[symbol] = len(mine)
    assert sum(seen_per_symbol.values()) >= 700

    # Orders and fills: enough of both kinds to mean something.
    fills, orders = res.fills, res.orders
    assert len(fills) >= 20 and {1, 2} <= set(fills["liquidity"].tolist())
    assert sorted(s.fills) == sorted(fills["client_order_id"].tolist())
    for row in orders:
        mine = fills[fills["client_order_id"] == row["client_order_id"]]
        assert row["filled"] == pytest.approx(mine["quantity"].sum(), abs=1e-9)
        assert row["filled"] <= row["quantity"] + 1e-12
        if row["status"] == OrderStatus.FILLED:
            assert row["filled"] == pytest.approx(row["quantity"])
    assert np.all(np.diff(fills["ts"]) >= 0)

    # Positions: the signed sum of the fills, on the exchange and in the engine's portfolio.
    pnl = tolerance = 0.0
    for name, inst in instruments.items():
        mine = fills[fills["instrument_id"] == inst.id]
        signed = float((mine["side"] * mine["quantity"]).sum())
        pos = res.positions.get(name, {"quantity": 0.0, "realized": 0.0, "unrealized": 0.0})
        assert pos["quantity"] == pytest.approx(signed, abs=1e-9), name
        assert bt.sim.position_raw(inst.id) == round(signed * 10 ** inst.size_precision), name
        strategy_pos = s.context.position(name)
        assert float(strategy_pos["quantity"] if strategy_pos else 0) == pytest.approx(signed, abs=1e-9)
        # P&L from the fills alone: cash flow + position at the final mark - fees
        cash = float(-(mine["side"] * mine["price"] * mine["quantity"]).sum())
        mark = res.meta["marks"].get(name, 0.0)
        expected = cash + signed * mark - float(mine["fee"].sum())
        got = pos["realized"] + pos["unrealized"] - float(mine["fee"].sum())
        # the portfolio keeps realized and unrealized P&L at the price's precision: each within half a unit
        unit = 10.0 ** -inst.price_precision
        assert got == pytest.approx(expected, rel=0, abs=unit), name
        pnl += expected
        tolerance += unit
    assert res.equity["equity"][-1] - capital == pytest.approx(pnl, rel=0, abs=tolerance)
    assert res.equity["fees"][-1] == pytest.approx(float(fills["fee"].sum()), rel=1e-12)
