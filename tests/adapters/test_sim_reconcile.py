"""Reconnect + reconciliation against the simulator's matching engine: nothing lost, nothing counted twice.

The bundled simulator's USD-M matching engine (extrema.sim.matching) trades a strategy's orders against
generated flow. Its user events are turned into the ORDER_UPDATE / FILL records a Binance user-data
stream decoder produces (status per executionReport, fill per trade, commission in USDT) and fed to an
ExecutionCore - except during a "disconnect", when they are lost, and after it, when part of them is
delivered again (a replaying stream). Reconciliation with the venue's state (open orders, every trade,
the position) must then leave the order table and the portfolio exactly where the venue is: sizes,
statuses, realised P&L and fees (the simulator keeps average-cost P&L too, in exact integers).
"""
from decimal import Decimal

import numpy as np

from extrema import InstrumentRegistry, Market, OrderStatus
from extrema.execution import AssetRegistry, ExecutionCore, VenueSnapshot, reconcile
from extrema.execution.orders import ClientOrderIds
from extrema.sim.matching import BUY, SELL, USDM, MatchingEngine, SymbolSpec
from order_records import fill, order_update

STATUS = {"NEW": OrderStatus.ACCEPTED, "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
          "FILLED": OrderStatus.FILLED, "CANCELED": OrderStatus.CANCELLED, "EXPIRED": OrderStatus.EXPIRED}


class Venue:
    def __init__(self):
        self.clock = 1_700_000_000_000
        self.engine = MatchingEngine(USDM, [SymbolSpec("BTCUSDT", "BTC", "USDT", tick="0.1", step="0.001",
                                                        min_notional="5")],
                                     clock_ms=lambda: self.clock, balances={"USDT": "100000"})
        for k in range(1, 30):
            self.engine.add_liquidity("BTCUSDT", SELL, 500_000 + 5 * k, 2_000)
            self.engine.add_liquidity("BTCUSDT", BUY, 500_000 - 5 * k, 2_000)
        self.engine.drain()

    def records(self, iid, usdt):
        """The user events since the last call as records: a FILL per trade, an ORDER_UPDATE per report."""
        out, fills = [], []
        for event in self.engine.drain():
            if event[0] != "order":
                continue
            _, o, exec_type, f = event
            coid = int(o.client_id)
            side = 0 if o.side == BUY else 1
            if f is not None:
                rec = fill(iid, coid, f.trade_id, f.price, f.qty, side=side, fee=f.commission, fee_asset=usdt,
                           maker=f.maker, venue_order_id=o.order_id, ts_exchange=o.update_time * 1000)
                out.append(rec)
                fills.append(rec)
            out.append(order_update(iid, coid, STATUS[o.status], side=side, price=o.price, quantity=o.qty,
                                    cum_filled=o.filled, venue_order_id=o.order_id,
                                    ts_exchange=o.update_time * 1000))
        return out, fills

    def open_order_records(self, iid):
        return [order_update(iid, int(o.client_id), STATUS[o.status], side=0 if o.side == BUY else 1, price=o.price,
                             quantity=o.qty, cum_filled=o.filled, venue_order_id=o.order_id,
                             ts_exchange=o.update_time * 1000)
                for o in self.engine.orders.values() if o.is_open()]


def test_reconnect_and_reconciliation_lose_and_duplicate_nothing():
    reg = InstrumentRegistry()
    btc = reg.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.001", venue_symbol="BTCUSDT")
    assets = AssetRegistry()
    usdt = assets.register("USDT", 8)
    core = ExecutionCore(reg, "average", assets)
    venue = Venue()
    ids = ClientOrderIds("reco", clock=lambda: 1_800_000_000)
    every_fill = []

    def place(owner, side, qty, price=None):
        coid = ids.next(owner)
        assert core.submit(owner, coid, btc.id, side, qty, price or 0, now=venue.clock * 1000) is None
        venue.engine.submit("BTCUSDT", BUY if side == "buy" else SELL, "LIMIT" if price else "MARKET", qty=qty,
                            price=price, tif="GTC" if price else None, client_id=str(coid))
        return coid

    def deliver(lost=False):
        recs, fills = venue.records(btc.id, usdt)
        every_fill.extend(fills)
        if not lost and recs:
            core.process(np.concatenate(recs))
        return recs

    # connected: a taker buy, resting orders of two strategies, flow that fills some of them
    place(0, "buy", 3_000)
    a = place(0, "buy", 1_500, 499_900)
    b = place(1, "sell", 2_500, 500_200)
    deliver()
    venue.clock += 1_000
    ahead = sum(q for p, q in venue.engine.books["BTCUSDT"].top(BUY, 100) if p >= 499_900) - 1_500
    venue.engine.market_flow("BTCUSDT", SELL, ahead + 500)           # fills 0.5 of strategy 0's bid
    deliver()
    # disconnected: fills, a new order, a cancel - none of it arrives
    venue.clock += 1_000
    c = place(1, "sell", 1_000, 500_300)
    ahead = sum(q for p, q in venue.engine.books["BTCUSDT"].top(SELL, 100) if p < 500_200)
    assert core.orders.get(a)["filled_raw"] == 500
    venue.engine.market_flow("BTCUSDT", BUY, ahead + 2_500 + 400)   # sweeps the asks, b, and c partly
    assert core.cancel(a)                                            # the cancel is sent ...
    venue.engine.cancel("BTCUSDT", client_id=str(a))                 # ... and done, unheard
    lost = deliver(lost=True)
    assert lost
    # reconnected: the stream replays part of what was lost, twice
    core.process(np.concatenate(lost[: len(lost) // 2]))
    core.process(np.concatenate(lost[: len(lost) // 2]))

    pos = venue.engine.positions["BTCUSDT"]
    snapshot = VenueSnapshot(Market.BINANCE_USDM, open_orders=np.concatenate(venue.open_order_records(btc.id)),
                             fills=np.concatenate(every_fill), positions={btc.id: pos.amount})
    events = reconcile(core, snapshot, close_missing=True)
    kinds = [e.kind for e in events]
    assert "FILL_RECOVERED" in kinds and "POSITION_MISMATCH" not in kinds
    summary = events[-1].actual
    assert summary["duplicate_fills"] == len(every_fill) - kinds.count("FILL_RECOVERED")

    # the engine agrees with the venue on every order ...
    for coid in (a, b, c):
        mine, theirs = core.orders.get(coid), venue.engine.find("BTCUSDT", client_id=str(coid))
        assert mine["filled_raw"] == theirs.filled, coid
        assert mine["status"] == STATUS[theirs.status], (coid, mine["status"], theirs.status)
    # ... on the position, the realised P&L (exact) and the fees
    all_pos = core.portfolio.position(65, btc.id)
    assert all_pos["quantity_raw"] == pos.amount
    assert all_pos["realized"] == Decimal(pos.realized).scaleb(-8)
    commission = sum(o.commission for o in venue.engine.orders.values())
    assert all_pos["fees"] == Decimal(commission).scaleb(-8)
    # strategies keep their own books; they add up to the venue's
    assert (core.portfolio.position(0, btc.id)["quantity_raw"] + core.portfolio.position(1, btc.id)["quantity_raw"]
            == pos.amount)

    # a second reconciliation (another reconnect) changes nothing and counts every fill as known
    again = reconcile(core, snapshot, close_missing=True)
    assert [e.kind for e in again] == ["SUMMARY"] and again[0].actual["duplicate_fills"] == len(every_fill)
    assert core.portfolio.position(65, btc.id)["quantity_raw"] == pos.amount
