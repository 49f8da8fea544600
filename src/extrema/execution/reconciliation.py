"""Reconciliation: merge what a venue says (open orders, recent fills, positions, balances) into the
engine's order table and portfolio after a start or a reconnect, and report every difference.

The adapter fetches the venue's state over REST (Binance: GET /api/v3/openOrders, /api/v3/myTrades,
/fapi/v2/positionRisk, /api/v3/account), turns orders and fills into the same ORDER_UPDATE / FILL records
its user-data stream produces, and calls

    events = reconcile(core, VenueSnapshot(market=Market.BINANCE_USDM, open_orders=..., fills=..., positions=...))

Rules:
  * fills first: a fill the table already counted (same instrument, trade id, side) is skipped
    (`duplicate_fills`); any other is applied like a live one and reported as FILL_RECOVERED. Nothing is
    ever counted twice, however often a snapshot is merged.
  * open orders: an order the table does not know is adopted (ORDER_ADOPTED); one whose status or
    cumulative filled size differs is updated through the state machine (ORDER_UPDATED; a refused
    transition is ORDER_CONFLICT with the code); one that agrees is left alone.
  * live orders of the table on this market that the venue does not list as open: ORDER_NOT_OPEN. With
    close_missing=True the venue's list is taken as the truth: an acknowledged order is closed as
    CANCELLED, one never acknowledged as REJECTED (reason RECONCILED_REASON). Without it the adapter should
    query those orders one by one (their final state arrives as ORDER_UPDATE records).
  * a snapshot with its time (`taken_us`, when the reads began) is older than what happened here since:
    an order created after it is not reported missing, and one changed after it (a cancel requested, an
    update applied) is not reported as a conflict when the venue's older state does not apply.
  * positions (venue-wide, per instrument, raw size): compared with the portfolio's ALL position;
    a difference is POSITION_MISMATCH. With adopt_positions=True the difference is booked to the EXTERNAL
    owner at the instrument's mark (or the price the venue gives), so ALL equals the venue afterwards
    (POSITION_ADOPTED).
  * balances: the venue's value is taken (BALANCE_SET, with the old value when it differed).
"""
from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal
from typing import Optional

import numpy as np

from extrema._core.records import CONTINUATION_DTYPE, RecordKind, RecordFlag, continuation_count
from extrema._core.portfolio import EXTERNAL, ALL

log = logging.getLogger("extrema.reconcile")

RECONCILED_REASON = 2000


@dataclasses.dataclass
class VenueSnapshot:
    market: object                                   # extrema.Market the snapshot covers
    open_orders: Optional[np.ndarray] = None         # ORDER_UPDATE records of the venue's open orders
    fills: Optional[np.ndarray] = None               # FILL records of the venue's recent trades
    positions: Optional[dict] = None                 # instrument id -> raw size, or (raw size, raw price)
    balances: Optional[dict] = None                  # asset code -> decimal amount
    # When the venue's state began to be read (engine clock, µs): an order created here since cannot be in
    # it (its request may still be on the way), so it is not reported missing. None: every order is checked.
    taken_us: Optional[int] = None


@dataclasses.dataclass
class ReconcileEvent:
    kind: str
    client_order_id: int = 0
    instrument_id: int = 0
    expected: object = None                          # what the engine had
    actual: object = None                            # what the venue says
    message: str = ""


def _changed_since(order, snapshot):
    """The order moved here (a cancel or replace requested, an update applied) after the snapshot was
    taken: the venue's older state may not apply to it, and that is no conflict."""
    return snapshot.taken_us is not None and order["ts_updated"] >= snapshot.taken_us


def _heads(records):
    """(index, head) of every multi-slot head record, with its continuation slots present."""
    if records is None or len(records) == 0:
        return
    i, n = 0, len(records)
    while i < n:
        cont = continuation_count(int(records[i]["flags"]))
        kind = int(records[i]["kind"])
        if kind in (RecordKind.ORDER_UPDATE, RecordKind.FILL):
            if cont < 1 or i + cont >= n:
                raise ValueError(f"record {i}: an ORDER_UPDATE / FILL needs its continuation slot")
            yield i, kind
        i += 1 + cont


def reconcile(core, snapshot: VenueSnapshot, *, close_missing=False, adopt_positions=False, now=None):
    """Merge a venue snapshot into an ExecutionCore; returns the differences as ReconcileEvents (the
    last one, SUMMARY, counts the fills that were already known)."""
    from extrema._core.clock import time_us
    from extrema._core.instruments import Market
    from extrema._core.orders import OrderEventCode as C
    market = Market(snapshot.market)
    now = time_us() if now is None else now
    orders, portfolio = core.orders, core.portfolio
    events: list[ReconcileEvent] = []
    duplicates = 0

    # 1. fills
    for i, kind in _heads(snapshot.fills):
        if kind != RecordKind.FILL:
            continue
        rec = snapshot.fills[i:i + 2]
        iid, trade_id, coid = int(rec[0]["instrument_id"]), int(rec[0]["sequence"]), int(rec[0]["aux0"])
        side = 1 if int(rec[0]["flags"]) & RecordFlag.ASK else 0
        if trade_id and orders.knows_trade(iid, trade_id, side):
            duplicates += 1
            continue
        (code,) = core.apply(rec, now=now)
        if code in (C.OK, C.UNKNOWN_ORDER):
            events.append(ReconcileEvent("FILL_RECOVERED", coid, iid, None, (trade_id, int(rec[0]["quantity"])),
                                         f"fill {trade_id} of order {coid} was missed; applied"))
        else:
            events.append(ReconcileEvent("FILL_CONFLICT", coid, iid, None, trade_id,
                                         f"venue fill {trade_id} of order {coid} refused: {code.name}"))

    # 2. the venue's open orders
    listed = set()
    for i, kind in _heads(snapshot.open_orders):
        if kind != RecordKind.ORDER_UPDATE:
            continue
        rec = snapshot.open_orders[i:i + 2]
        coid, iid = int(rec[0]["sequence"]), int(rec[0]["instrument_id"])
        listed.add(coid)
        status = int(rec[1:].view(CONTINUATION_DTYPE)["payload"][0][0])
        mine = orders.get(coid)
        (code,) = core.apply(rec, now=now)
        if mine is None:
            events.append(ReconcileEvent("ORDER_ADOPTED", coid, iid, None, status,
                                         f"order {coid} is open at the venue and was unknown here"))
        elif code == C.OK:
            events.append(ReconcileEvent("ORDER_UPDATED", coid, iid, mine["status"], status,
                                         f"order {coid}: {mine['status'].name} here, status {status} at the venue"))
        elif code not in (C.DUPLICATE, C.STALE) and not _changed_since(mine, snapshot):
            events.append(ReconcileEvent("ORDER_CONFLICT", coid, iid, mine["status"], status,
                                         f"order {coid}: the venue's state was refused ({code.name})"))

    # 3. live orders the venue does not list (those created after the snapshot was taken cannot be in it)
    for coid in orders.open_orders():
        o = orders.get(coid)
        if coid in listed or not _on_market(core, o["instrument_id"], market):
            continue
        if snapshot.taken_us is not None and o["ts_created"] >= snapshot.taken_us:
            continue
        events.append(ReconcileEvent("ORDER_NOT_OPEN", coid, o["instrument_id"], o["status"], None,
                                     f"order {coid} ({o['status'].name}) is not open at the venue"))
        if close_missing:
            live = o["base_status"] if o["status"] in (8, 9) else o["status"]
            rec = orders.record(coid)
            cont = rec[1:].view(CONTINUATION_DTYPE)
            cont["payload"][0][0] = 5 if live >= 2 else 6          # CANCELLED if acknowledged, else REJECTED
            cont["payload"][0][6] = RECONCILED_REASON
            rec[0]["aux0"] = o["venue_filled_raw"]
            core.apply(rec, now=now)

    # 4. positions
    for iid, value in (snapshot.positions or {}).items():
        size, price = value if isinstance(value, tuple) else (value, None)
        have = portfolio.position(ALL, iid)
        ours = have["quantity_raw"] if have is not None else 0
        if ours == size:
            continue
        events.append(ReconcileEvent("POSITION_MISMATCH", 0, iid, ours, size,
                                     f"instrument {iid}: position {ours} here, {size} at the venue"))
        if adopt_positions:
            if price is None:
                mark = portfolio.mark(iid)
                if mark != mark:
                    raise ValueError(f"instrument {iid}: no mark price to book the position difference at; "
                                     f"give (size, price) in the snapshot")
                price = int(Decimal(repr(mark)).scaleb(core.registry[iid].price_precision).to_integral_value())
            diff = size - ours
            portfolio.fill(EXTERNAL, iid, "buy" if diff > 0 else "sell", price, abs(diff))
            events.append(ReconcileEvent("POSITION_ADOPTED", 0, iid, ours, size,
                                         f"instrument {iid}: {diff:+d} booked to EXTERNAL at {price}"))

    # 5. balances
    for asset, amount in (snapshot.balances or {}).items():
        old = portfolio.balance(market, asset)
        new = Decimal(str(amount))
        if old != new:
            events.append(ReconcileEvent("BALANCE_SET", 0, 0, old, new,
                                         f"{market.name} {asset}: {old if old else 0} -> {new}"))
        portfolio.set_balance(market, asset, new)

    for e in events:
        # a balance the venue reports is learned, not a conflict (the engine starts knowing none); the
        # other differences mean something happened that the streams did not say
        log.log(logging.INFO if e.kind == "BALANCE_SET" else logging.WARNING, "reconcile %s: %s",
                market.name, e.message)
    events.append(ReconcileEvent("SUMMARY", 0, 0, None, {"duplicate_fills": duplicates},
                                 f"{len(events)} differences, {duplicates} fills already counted"))
    log.info("reconcile %s: %s", market.name, events[-1].message)
    return events


def _on_market(core, iid, market):
    try:
        return core.registry[iid].market == market
    except KeyError:
        return False
