"""NautilusTrader's L2 order book, driven the way a Python user of NautilusTrader drives it.

NautilusTrader (`pip install nautilus-trader`, a peer, never an extrema dependency) exposes two
Python-accessible order books over the same Rust core:

* "cython": `nautilus_trader.model.book.OrderBook` with `nautilus_trader.model.data.OrderBookDelta`,
  the objects its own Python/Cython trading system (DataEngine, strategies) uses;
* "pyo3":   `nautilus_trader.core.nautilus_pyo3.OrderBook` with the pyo3 data types.

Both are measured where it is cheap to do so, and each figure reports the faster one and names it.

Units: NautilusTrader stores prices and quantities as fixed-point integers at FIXED_PRECISION decimals
(16 in its high-precision build, 9 otherwise) whatever the instrument's precision, so a raw extrema
value at precision p maps to `raw * 10**(FIXED_PRECISION - p)`.

L2_MBP semantics used: an update that does not know whether the level exists (plain exchange data:
price, size) is BookAction.UPDATE (an upsert in an MBP book) when size > 0 and BookAction.DELETE when
size == 0, as NautilusTrader's own Binance adapter does. Prebuilt deltas from the generated workload
carry the true action (ADD / UPDATE / DELETE).
"""

from __future__ import annotations

import numpy as np

NAME = "nautilus-trader"

try:
    import nautilus_trader
    from nautilus_trader.core import nautilus_pyo3 as _n
    from nautilus_trader.model import objects as _objects
    from nautilus_trader.model.book import OrderBook as _CyOrderBook
    from nautilus_trader.model.data import BookOrder as _CyBookOrder
    from nautilus_trader.model.data import OrderBookDelta as _CyDelta
    from nautilus_trader.model.data import OrderBookDeltas as _CyDeltas
    from nautilus_trader.model.enums import BookAction as _CyBookAction
    from nautilus_trader.model.enums import BookType as _CyBookType
    from nautilus_trader.model.enums import OrderSide as _CyOrderSide
    from nautilus_trader.model.identifiers import InstrumentId as _CyInstrumentId
    from nautilus_trader.model.objects import Price as _CyPrice
    from nautilus_trader.model.objects import Quantity as _CyQuantity

    VERSION = nautilus_trader.__version__
    FIXED_PRECISION = _objects.FIXED_PRECISION
    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any failure means "peer unavailable", reported by the suite
    VERSION = None
    FIXED_PRECISION = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = IMPORT_ERROR is None
APIS = ("cython", "pyo3")
BID, ASK = 0, 1
ADD, UPDATE, DELETE = 1, 2, 3  # workload actions


def label(api: str, what: str) -> str:
    return f"nautilus {VERSION} {what} [{api}]"


class NautilusBooks:
    """Factory for NautilusTrader books and data for one instrument at given precisions."""

    def __init__(self, price_precision: int, size_precision: int, instrument: str = "BTCUSDT.BINANCE"):
        if not AVAILABLE:
            raise RuntimeError(f"nautilus_trader is not importable: {IMPORT_ERROR}")
        self.pp = price_precision
        self.sp = size_precision
        self.price_scale = 10 ** (FIXED_PRECISION - price_precision)
        self.size_scale = 10 ** (FIXED_PRECISION - size_precision)
        self.cy_iid = _CyInstrumentId.from_str(instrument)
        self.py_iid = _n.InstrumentId.from_str(instrument)
        self.cy_actions = {ADD: _CyBookAction.ADD, UPDATE: _CyBookAction.UPDATE, DELETE: _CyBookAction.DELETE}
        self.py_actions = {ADD: _n.BookAction.ADD, UPDATE: _n.BookAction.UPDATE, DELETE: _n.BookAction.DELETE}
        self.cy_sides = (_CyOrderSide.BUY, _CyOrderSide.SELL)
        self.py_sides = (_n.OrderSide.BUY, _n.OrderSide.SELL)

    # ---------------------------------------------------------------------------------- books

    def new_book(self, api: str):
        if api == "cython":
            return _CyOrderBook(self.cy_iid, _CyBookType.L2_MBP)
        return _n.OrderBook(self.py_iid, _n.BookType.L2_MBP)

    @staticmethod
    def clear(book, api: str) -> None:
        if api == "cython":
            book.clear(0)
        else:
            book.clear(0, 0)

    # ---------------------------------------------------------------------------------- deltas

    def delta_from_raw(self, api: str, action: int, side: int, price_raw: int, size_raw: int,
                       sequence: int = 0, flags: int = 0):
        if api == "cython":
            return _CyDelta.from_raw(self.cy_iid, self.cy_actions[action], self.cy_sides[side],
                                     price_raw * self.price_scale, self.pp, size_raw * self.size_scale,
                                     self.sp, 0, flags, sequence, 0, 0)
        order = _n.BookOrder(self.py_sides[side], _n.Price.from_raw(price_raw * self.price_scale, self.pp),
                             _n.Quantity.from_raw(size_raw * self.size_scale, self.sp), 0)
        return _n.OrderBookDelta(self.py_iid, self.py_actions[action], order, flags, sequence, 0, 0)

    def snapshot_deltas(self, workload, api: str, shift: int = 0) -> list:
        out = [self.delta_from_raw(api, ADD, BID, p + shift, s, workload.snapshot_id)
               for p, s in workload.snapshot_bids]
        out += [self.delta_from_raw(api, ADD, ASK, p + shift, s, workload.snapshot_id)
                for p, s in workload.snapshot_asks]
        return out

    def workload_deltas(self, workload, api: str, start: int = 0, stop: int | None = None) -> list:
        """Prebuilt deltas for updates [start, stop) with their true action; LAST flag (F_LAST = 128)
        on the last delta of each exchange message, sequence = the message's update id."""
        sl = slice(start, stop)
        f_last = 128
        mk = self.delta_from_raw
        return [mk(api, a, s, p, q, u, f_last if last else 0)
                for a, s, p, q, u, last in zip(workload.action[sl].tolist(), workload.side[sl].tolist(),
                                                workload.price[sl].tolist(), workload.size[sl].tolist(),
                                                workload.update_id[sl].tolist(), workload.last[sl].tolist())]

    def batches(self, deltas: list, last_flags: list, api: str) -> list:
        """OrderBookDeltas, one per exchange message (as NautilusTrader's adapters publish them)."""
        make = _CyDeltas if api == "cython" else _n.OrderBookDeltas
        iid = self.cy_iid if api == "cython" else self.py_iid
        out, start = [], 0
        for i, last in enumerate(last_flags):
            if last:
                out.append(make(iid, deltas[start:i + 1]))
                start = i + 1
        if start < len(deltas):
            out.append(make(iid, deltas[start:]))
        return out

    def one_batch(self, deltas: list, api: str):
        if api == "cython":
            return _CyDeltas(self.cy_iid, deltas)
        return _n.OrderBookDeltas(self.py_iid, deltas)

    # ----------------------------------------------------------------------- timed loop bodies

    @staticmethod
    def apply_loop(book):
        """fn(deltas): book.apply_delta(d) for each prebuilt delta."""
        apply = book.apply_delta

        def run(deltas):
            for d in deltas:
                apply(d)
        return run

    @staticmethod
    def apply_batches_loop(book):
        """fn(batches): book.apply_deltas(b) for each OrderBookDeltas."""
        apply = book.apply_deltas

        def run(batches):
            for b in batches:
                apply(b)
        return run

    def build_and_apply_loop(self, book, api: str):
        """fn(ops): for (side, price float, size float): build Price, Quantity, BookOrder,
        OrderBookDelta from the plain values, then apply_delta. Written inline (no helper call)."""
        pp, sp = self.pp, self.sp
        apply = book.apply_delta
        upd, dele = self.cy_actions[UPDATE], self.cy_actions[DELETE]
        if api == "cython":
            iid, sides = self.cy_iid, self.cy_sides
            Price, Quantity, BookOrder, Delta = _CyPrice, _CyQuantity, _CyBookOrder, _CyDelta
        else:
            iid, sides = self.py_iid, self.py_sides
            upd, dele = self.py_actions[UPDATE], self.py_actions[DELETE]
            Price, Quantity, BookOrder, Delta = _n.Price, _n.Quantity, _n.BookOrder, _n.OrderBookDelta

        def run(ops):
            for side, price, size in ops:
                apply(Delta(iid, upd if size else dele,
                            BookOrder(sides[side], Price(price, pp), Quantity(size, sp), 0), 0, 0, 0, 0))
        return run

    # ----------------------------------------------------------------------------------- reads

    @staticmethod
    def top_variants(book, api: str, n: int = 10) -> dict:
        """Ways to get the top-n levels of both sides as an (n, 4) float64 array
        [bid_px, bid_sz, ask_px, ask_sz] (NaN-padded) with the public API. name -> fn()."""
        nan = np.nan
        full = np.full
        if api == "cython":
            def levels_lists():
                bids = book.bids()[:n]
                asks = book.asks()[:n]
                out = full((n, 4), nan)
                if bids:
                    out[:len(bids), 0:2] = [(lv.price.as_double(), lv.size()) for lv in bids]
                if asks:
                    out[:len(asks), 2:4] = [(lv.price.as_double(), lv.size()) for lv in asks]
                return out
            return {"bids()/asks() BookLevel lists -> numpy": levels_lists}

        def levels_depth():
            bids = book.bids(n)
            asks = book.asks(n)
            out = full((n, 4), nan)
            if bids:
                out[:len(bids), 0:2] = [(lv.price.as_double(), lv.size()) for lv in bids]
            if asks:
                out[:len(asks), 2:4] = [(lv.price.as_double(), lv.size()) for lv in asks]
            return out

        def dicts():
            bids = book.bids_to_dict(n)
            asks = book.asks_to_dict(n)
            out = full((n, 4), nan)
            if bids:
                out[:len(bids), 0:2] = np.array(list(bids.items()), dtype=np.float64)
            if asks:
                out[:len(asks), 2:4] = np.array(list(asks.items()), dtype=np.float64)
            return out
        return {"bids(n)/asks(n) BookLevel lists -> numpy": levels_depth,
                "bids_to_dict(n)/asks_to_dict(n) -> numpy": dicts}

    @staticmethod
    def bid_levels_variants(book, api: str, n: int = 10) -> dict:
        """Ways to get the best n bid levels as an (k, 2) float64 array [price, size]."""
        if api == "cython":
            def lists():
                return np.array([(lv.price.as_double(), lv.size()) for lv in book.bids()[:n]], dtype=np.float64)
            return {"bids() BookLevel list -> numpy": lists}

        def depth():
            return np.array([(lv.price.as_double(), lv.size()) for lv in book.bids(n)], dtype=np.float64)

        def as_dict():
            return np.array(list(book.bids_to_dict(n).items()), dtype=np.float64)
        return {"bids(n) BookLevel list -> numpy": depth, "bids_to_dict(n) -> numpy": as_dict}

    def levels_raw(self, book, api: str, side: int) -> list:
        """[(price_raw, size_raw)] best first at the instrument precisions (for cross-checking)."""
        levels = (book.bids() if side == BID else book.asks())
        if api == "cython":
            return [(lv.price.raw // self.price_scale, lv.orders()[0].size.raw // self.size_scale)
                    for lv in levels]
        return [(lv.price.raw // self.price_scale, lv.size_raw() // self.size_scale) for lv in levels]
