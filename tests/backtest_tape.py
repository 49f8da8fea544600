"""Record tapes for the backtest tests (tests/backtest/)."""
import numpy as np

import extrema
from extrema import InstrumentRegistry, RecordFlag, RecordKind

T0 = 1_767_225_600_000_000          # 2026-01-01T00:00:00Z in µs


def registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", extrema.Market.BINANCE_SPOT, "0.1", "0.001", min_notional="5")
    return reg


class Tape:
    """Builds a RECORD_DTYPE stream: book snapshots / deltas and trades at given µs offsets from T0."""

    def __init__(self, iid=1):
        self.iid = iid
        self.rows = []

    def _add(self, kind, flags, t, price, qty, seq=0, exch=None):
        ts = T0 + t
        self.rows.append((kind, flags, self.iid, ts if exch is None else T0 + exch, ts, seq, price, qty, 0, 0))

    def snapshot(self, t, bids, asks):
        levels = [(0, p, q) for p, q in bids] + [(int(RecordFlag.ASK), p, q) for p, q in asks]
        for k, (side, p, q) in enumerate(levels):
            flags = side | int(RecordFlag.SNAPSHOT) | (int(RecordFlag.LAST) if k == len(levels) - 1 else 0)
            self._add(RecordKind.BOOK_DELTA, flags, t, p, q)
        return self

    def level(self, t, side, price, qty, exch=None):
        flags = (int(RecordFlag.ASK) if side == "ask" else 0) | int(RecordFlag.LAST)
        self._add(RecordKind.BOOK_DELTA, flags, t, price, qty, exch=exch)
        return self

    def trade(self, t, price, qty, seller_aggressor, exch=None):
        self._add(RecordKind.TRADE, int(RecordFlag.ASK) if seller_aggressor else 0, t, price, qty, exch=exch)
        return self

    def array(self):
        out = np.zeros(len(self.rows), dtype=extrema.RECORD_DTYPE)
        for i, r in enumerate(self.rows):
            out[i] = r
        return out

