"""reconcile(): each kind of difference between the engine and a venue snapshot, and what is done about it."""
from decimal import Decimal

import numpy as np
import pytest

from extrema import InstrumentRegistry, Market, OrderStatus as S
from extrema._core.clock import time_us
from extrema.execution import ExecutionCore, VenueSnapshot, reconcile, RECONCILED_REASON
from order_records import fill, order_update


@pytest.fixture
def env():
    reg = InstrumentRegistry()
    perp = reg.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.001")      # id 1
    spot = reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.001")          # id 2
    return ExecutionCore(reg, "fifo"), perp, spot


def kinds(events):
    return [e.kind for e in events]


def test_unknown_open_orders_are_adopted_and_stale_state_updated(env):
    core, perp, _ = env
    mine = (1 << 6) | 2
    core.submit(2, mine, perp.id, "buy", 1_000, 500_000)
    foreign = (1 << 62) + 77
    snap = VenueSnapshot(Market.BINANCE_USDM, open_orders=np.concatenate([
        order_update(perp.id, mine, S.PARTIALLY_FILLED, price=500_000, quantity=1_000, cum_filled=300),
        order_update(perp.id, foreign, S.ACCEPTED, side=1, price=510_000, quantity=50)]))
    ev = reconcile(core, snap)
    assert kinds(ev) == ["ORDER_UPDATED", "ORDER_ADOPTED", "SUMMARY"]
    assert core.orders.get(mine)["status"] == S.PARTIALLY_FILLED
    assert core.orders.get(mine)["venue_filled_raw"] == 300 and core.orders.get(mine)["filled_raw"] == 0
    assert core.orders.get(foreign)["owner"] == 64
    assert core.portfolio.active_instruments(64) == [perp.id]
    assert kinds(reconcile(core, snap)) == ["SUMMARY"]          # merged once, nothing new the second time


def test_orders_not_open_at_the_venue(env):
    core, perp, spot = env
    acked, unacked, other_venue = (1 << 6), (2 << 6), (3 << 6)
    for coid, iid in ((acked, perp.id), (unacked, perp.id), (other_venue, spot.id)):
        assert core.submit(0, coid, iid, "buy", 1_000, 500_000 if iid == perp.id else 50_000_00) is None
    core.process(order_update(perp.id, acked, S.ACCEPTED, price=500_000, quantity=1_000))
    ev = reconcile(core, VenueSnapshot(Market.BINANCE_USDM))
    assert kinds(ev) == ["ORDER_NOT_OPEN", "ORDER_NOT_OPEN", "SUMMARY"]      # the spot order is not this venue's
    assert core.orders.status(acked) == S.ACCEPTED                            # reported, left as it is
    reconcile(core, VenueSnapshot(Market.BINANCE_USDM), close_missing=True)
    assert core.orders.status(acked) == S.CANCELLED and core.orders.get(acked)["reason"] == RECONCILED_REASON
    assert core.orders.status(unacked) == S.REJECTED
    assert core.orders.status(other_venue) == S.SUBMITTED


def test_orders_created_after_the_snapshot_was_taken_are_not_missing(env):
    core, perp, _ = env
    before, after = (1 << 6), (2 << 6)
    assert core.submit(0, before, perp.id, "buy", 1_000, 500_000, now=1_000) is None
    assert core.submit(0, after, perp.id, "buy", 1_000, 500_000, now=2_000) is None      # sent during the reads
    snap = VenueSnapshot(Market.BINANCE_USDM, taken_us=2_000)
    ev = reconcile(core, snap, close_missing=True)
    assert [(e.kind, e.client_order_id) for e in ev[:-1]] == [("ORDER_NOT_OPEN", before)]
    assert core.orders.status(before) == S.REJECTED and core.orders.status(after) == S.SUBMITTED
    assert kinds(reconcile(core, VenueSnapshot(Market.BINANCE_USDM), close_missing=True)) == ["ORDER_NOT_OPEN",
                                                                                              "SUMMARY"]


def test_an_order_changed_after_the_snapshot_is_no_conflict(env):
    core, perp, _ = env
    coid = 1 << 6
    core.submit(0, coid, perp.id, "buy", 1_000, 500_000)
    listed = order_update(perp.id, coid, S.ACCEPTED, price=500_000, quantity=1_000)
    core.process(listed)
    taken = time_us()                                          # the venue's open orders are read: it is open
    core.process(order_update(perp.id, coid, S.CANCELLED, price=500_000, quantity=1_000))     # then cancelled
    assert core.orders.get(coid)["ts_updated"] >= taken
    old = VenueSnapshot(Market.BINANCE_USDM, open_orders=listed, taken_us=taken)
    assert kinds(reconcile(core, old)) == ["SUMMARY"]
    assert core.orders.status(coid) == S.CANCELLED
    untimed = VenueSnapshot(Market.BINANCE_USDM, open_orders=listed)
    assert kinds(reconcile(core, untimed)) == ["ORDER_CONFLICT", "SUMMARY"]


def test_missed_fills_are_applied_once_and_conflicts_reported(env):
    core, perp, _ = env
    coid = 1 << 6
    core.submit(0, coid, perp.id, "buy", 1_000, 500_000)
    core.process(fill(perp.id, coid, 1, 500_000, 400))
    fills = np.concatenate([fill(perp.id, coid, 1, 500_000, 400), fill(perp.id, coid, 2, 500_000, 600),
                            fill(perp.id, coid, 3, 500_000, 1)])
    ev = reconcile(core, VenueSnapshot(Market.BINANCE_USDM, fills=fills))
    assert kinds(ev) == ["FILL_RECOVERED", "FILL_CONFLICT", "SUMMARY"] and ev[-1].actual["duplicate_fills"] == 1
    assert core.orders.get(coid)["status"] == S.FILLED
    assert core.portfolio.position(0, perp.id)["quantity_raw"] == 1_000


def test_positions_and_balances(env):
    core, perp, _ = env
    core.portfolio.set_mark(perp.id, 500_000)
    snap = VenueSnapshot(Market.BINANCE_USDM, positions={perp.id: -250}, balances={"USDT": "1234.5"})
    ev = reconcile(core, snap)
    assert kinds(ev) == ["POSITION_MISMATCH", "BALANCE_SET", "SUMMARY"]
    assert ev[0].expected == 0 and ev[0].actual == -250
    assert core.portfolio.balance(Market.BINANCE_USDM, "USDT") == Decimal("1234.5")
    ev = reconcile(core, snap, adopt_positions=True)
    assert kinds(ev) == ["POSITION_MISMATCH", "POSITION_ADOPTED", "SUMMARY"]
    assert core.portfolio.position(65, perp.id)["quantity_raw"] == -250
    assert core.portfolio.position(64, perp.id)["cost_raw"] == -250 * 500_000
    assert kinds(reconcile(core, snap)) == ["SUMMARY"]
    with pytest.raises(ValueError, match="no mark price"):
        reconcile(core, VenueSnapshot(Market.BINANCE_SPOT, positions={2: 5}), adopt_positions=True)


def test_a_snapshot_head_without_its_payload_is_an_error(env):
    core, perp, _ = env
    with pytest.raises(ValueError, match="continuation"):
        reconcile(core, VenueSnapshot(Market.BINANCE_USDM, fills=fill(perp.id, 1, 1, 1, 1)[:1]))
