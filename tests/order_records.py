"""Builders of ORDER_UPDATE and FILL records (records.pyx layouts) for the execution tests."""
import numpy as np

import extrema
from extrema import RecordFlag, RecordKind


def order_update(instrument_id, coid, status, *, side=0, price=0, quantity=0, cum_filled=0, venue_order_id=0,
                 order_type=2, time_in_force=1, avg_price=0, stop_price=0, reason=0, ts_exchange=0, ts_local=0):
    rec = extrema.empty_records(2)
    flags = extrema.with_continuations(RecordFlag.ASK if side else 0, 1)
    rec[0] = (RecordKind.ORDER_UPDATE, flags, instrument_id, ts_exchange, ts_local, coid, price, quantity,
              cum_filled, venue_order_id)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = instrument_id
    cont["payload"][0] = [int(status), order_type, time_in_force, avg_price, stop_price,
                          max(quantity - cum_filled, 0), reason]
    return rec


def fill(instrument_id, coid, trade_id, price, quantity, *, side=0, fee=0, fee_asset=0, maker=False,
         venue_order_id=0, ts_exchange=0, ts_local=0):
    rec = extrema.empty_records(2)
    flags = (RecordFlag.ASK if side else 0) | (RecordFlag.MAKER if maker else 0)
    rec[0] = (RecordKind.FILL, extrema.with_continuations(flags, 1), instrument_id, ts_exchange, ts_local,
              trade_id, price, quantity, coid, fee)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = instrument_id
    cont["payload"][0] = [venue_order_id, fee_asset, 0, 0, 0, 0, 0]
    return rec


def trade(instrument_id, price, quantity, *, seller_aggressor=False, trade_id=0, ts=0):
    rec = extrema.empty_records(1)
    rec[0] = (RecordKind.TRADE, RecordFlag.ASK if seller_aggressor else 0, instrument_id, ts, ts, trade_id, price,
              quantity, 0, 0)
    return rec


def quote(instrument_id, bid, bid_size, ask, ask_size, *, ts=0):
    rec = extrema.empty_records(1)
    rec[0] = (RecordKind.QUOTE, 0, instrument_id, ts, ts, 0, bid, bid_size, ask, ask_size)
    return rec


def concat(*arrays):
    return np.concatenate(arrays)
