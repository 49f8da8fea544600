"""A live (or paper) engine's run as a backtest-style result: the same files, statistics and plots.

    tape = LiveTape(engine)        # after build(), before start(): reads the engine's ring on a thread
    engine.start(); ...; engine.stop()
    tape.close()
    result = result_from_engine(engine, tape)          # -> extrema.backtest.results.BacktestResult
    result.write("report/")

The engine keeps orders (its order table) and positions (its portfolio) but not a history of fills or
of equity, so `LiveTape` keeps them: a back-pressure consumer of the engine's ring (the same records
the strategies saw, read off the hot path on its own thread, as DESIGN.md section 1 intends for
recorders) collects every FILL and ORDER_UPDATE, and every `equity_interval` seconds it samples the
portfolio's equity. `live_arrays` turns that into the pinned result arrays (ORDER_DTYPE, FILL_DTYPE,
EQUITY_DTYPE of extrema.backtest.results); `result_from_engine` wraps them in a BacktestResult.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np

from extrema._core.clock import time_us
from extrema._core.instruments import asset_code
from extrema._core.records import CONTINUATION_DTYPE, RECORD_DTYPE, OrderStatus, RecordFlag, RecordKind
from extrema._core.ring import RingClosedError
from extrema.backtest.results import (EQUITY_DTYPE, FILL_DTYPE, ORDER_DTYPE, BacktestResult, equity_row,
                                      final_positions)

log = logging.getLogger("extrema.cli")

ASSET_SCALE = 1e8         # FILL fees are raw at ASSET_PRECISION (records.pyx)
_KEPT = (RecordKind.FILL, RecordKind.ORDER_UPDATE)
_TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
_ACKED = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)


def equity_sample(engine, ts=None):
    """One EQUITY_DTYPE row of the engine's account-wide positions now (P&L: a live run has no starting
    capital of its own), the same row a backtest samples."""
    row = np.zeros(1, EQUITY_DTYPE)
    row[0] = equity_row(engine.portfolio, time_us() if ts is None else ts,
                        multipliers={inst.id: float(inst.multiplier) for inst in engine.registry})
    return row


class LiveTape:
    """Fills, order updates and equity samples of a running engine (see the module doc)."""

    def __init__(self, engine, *, equity_interval: float = 1.0):
        if equity_interval <= 0:
            raise ValueError(f"equity_interval must be > 0 seconds, got {equity_interval}")
        self.engine = engine
        self.equity_interval = equity_interval
        self._consumer = engine.ring.consumer("block")
        self._chunks: list[np.ndarray] = []
        self._equity: list[np.ndarray] = []
        self.started_us = time_us()
        self.ended_us = None
        self._thread = threading.Thread(target=self._run, name="extrema-live-tape", daemon=True)
        self._thread.start()

    def _take(self, batch):
        # a consumer's batches hold whole events (RingConsumer.read): each FILL / ORDER_UPDATE head has its
        # continuation right after it in the same batch
        idx = np.flatnonzero(np.isin(batch["kind"], _KEPT))
        if len(idx):
            both = np.empty(2 * len(idx), np.intp)
            both[0::2], both[1::2] = idx, idx + 1
            self._chunks.append(batch[both].copy())

    def _run(self):
        # A back-pressure consumer that stopped reading would stall the engine once the ring is full:
        # whatever happens here, the consumer is closed (released) when this thread ends.
        next_sample = time.monotonic()
        try:
            while True:
                wait = max(next_sample - time.monotonic(), 0.0)
                try:
                    batch = self._consumer.read(timeout=wait)
                except RingClosedError:
                    break
                if len(batch):
                    self._take(batch)
                if time.monotonic() >= next_sample:
                    self._equity.append(equity_sample(self.engine))
                    next_sample += self.equity_interval
        except Exception:
            log.exception("the live tape stopped reading the engine's ring; the report will be partial")
        finally:
            self._consumer.close()

    def close(self, timeout: float = 10.0):
        """Wait for the engine's ring to close (engine.stop()) and everything to be read; a last sample."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the live tape did not finish reading the ring within %.0f s", timeout)
        self.ended_us = time_us()
        self._equity.append(equity_sample(self.engine, self.ended_us))

    def records(self) -> np.ndarray:
        """Every FILL / ORDER_UPDATE (head + continuation) seen, in ring order."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, RECORD_DTYPE)

    def equity(self) -> np.ndarray:
        return np.concatenate(self._equity) if self._equity else np.zeros(0, EQUITY_DTYPE)


def live_arrays(engine, tape: LiveTape) -> dict:
    """The result fields (orders, fills, equity, positions, instruments, strategies, meta) of a live run."""
    registry = engine.registry
    strategies = [s.name for s in engine.dispatcher.strategies]
    recs = tape.records()
    heads = recs[0::2]
    payload = recs[1::2].copy().view(CONTINUATION_DTYPE)["payload"]     # p0..p6 of each continuation

    # ack / done times from the order updates the strategies received
    ack, done = {}, {}
    upd = np.flatnonzero(heads["kind"] == RecordKind.ORDER_UPDATE)
    for i in upd:
        coid, status, ts = int(heads["sequence"][i]), int(payload[i, 0]), int(heads["ts_local"][i])
        if status in _ACKED and coid not in ack:
            ack[coid] = ts
        if status in _TERMINAL and coid not in done:
            done[coid] = ts

    table = engine.orders.to_numpy()
    table = table[table["owner"] < len(strategies)]           # this engine's strategies' orders only
    orders = np.zeros(len(table), ORDER_DTYPE)
    submit = {}
    for k, o in enumerate(table):
        inst = registry[int(o["instrument_id"])]
        coid = int(o["client_order_id"])
        submit[coid] = (int(o["ts_created"]), int(o["owner"]))
        orders[k] = (coid, o["owner"], o["instrument_id"], -1 if o["side"] else 1, o["order_type"],
                     o["time_in_force"], o["price_raw"] / 10.0 ** inst.price_precision,
                     o["quantity_raw"] / 10.0 ** inst.size_precision, o["filled_raw"] / 10.0 ** inst.size_precision,
                     o["status"], int(o["reason"]) & 0xFFFF, o["ts_created"],      # OrderReason (low 16 bits)
                     ack.get(coid, 0), done.get(coid, 0))

    fi = np.flatnonzero(heads["kind"] == RecordKind.FILL)
    fills = np.zeros(len(fi), FILL_DTYPE)
    k = 0
    seen = set()
    for i in fi:
        h = heads[i]
        coid = int(h["aux0"])
        if coid not in submit:                                 # another engine's or an external order
            continue
        # A venue trade counts once, as the order table counts it (a replayed or duplicated FILL
        # reaches the ring but not the positions): key (instrument, trade id, side).
        key = (int(h["instrument_id"]), int(h["sequence"]), bool(h["flags"] & RecordFlag.ASK))
        if h["sequence"] != 0:
            if key in seen:
                continue
            seen.add(key)
        sub_ts, owner = submit[coid]
        inst = registry[int(h["instrument_id"])]
        price = h["price"] / 10.0 ** inst.price_precision
        qty = h["quantity"] / 10.0 ** inst.size_precision
        fee = h["aux1"] / ASSET_SCALE
        fee_asset = int(payload[i, 1])
        if fee_asset and asset_code(fee_asset) == inst.base:   # fee taken in the base asset: value it in quote
            fee *= price
        ts = int(h["ts_exchange"]) or int(h["ts_local"])
        fills[k] = (ts, coid, owner, h["instrument_id"], -1 if h["flags"] & RecordFlag.ASK else 1, price, qty,
                    fee, 1 if h["flags"] & RecordFlag.MAKER else 2, int(h["ts_local"]) - sub_ts)
        k += 1
    fills = fills[:k]

    positions, _ = final_positions(engine.portfolio, {inst.id: inst.name for inst in registry})
    equity = tape.equity()
    wall = max((tape.ended_us or time_us()) - tape.started_us, 1) / 1e6
    meta = {"mode": "live", "events": int(engine.published), "wall_seconds": round(wall, 3),
            "events_per_second": engine.published / wall,
            "data_span_us": [int(tape.started_us), int(tape.ended_us or time_us())],
            "models": {"execution": "venue (live or the bundled simulator)"},
            "stop_reason": engine.stop_reason}
    return {"orders": orders, "fills": fills, "equity": equity, "positions": positions,
            "instruments": {i.id: i.name for i in registry}, "strategies": strategies, "meta": meta}


def result_from_engine(engine, tape: LiveTape, **meta):
    """A BacktestResult (extrema.backtest.results) of a live engine's run; `meta` adds run facts."""
    fields = live_arrays(engine, tape)
    fields["meta"].update(meta)
    return BacktestResult(**fields)
