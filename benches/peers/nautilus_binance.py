"""NautilusTrader's Binance market-data path for depth diffs, as its live data client runs it.

What `BinanceCommonDataClient` (nautilus_trader/adapters/binance/data.py, 1.221.0) does per websocket
frame of a `<symbol>@depth@100ms` stream, reproduced with its own objects and no extra work:

    wrapper = msgspec.json.Decoder(BinanceDataMsgWrapper).decode(raw)      # _handle_ws_message: which stream
    msg = msgspec.json.Decoder(BinanceOrderBookMsg).decode(raw)           # _handle_book_diff_update
    instrument_id = _get_cached_instrument_id(msg.data.s)                 # BinanceSymbol -> nautilus symbol -> dict
    deltas = msg.data.parse_to_order_book_deltas(instrument_id, ts_init)  # Price / Quantity.from_str per level
    book.apply_deltas(deltas)                                             # what its DataEngine does with them

The message bus / DataEngine hop between the last two steps is left out (it only adds to NautilusTrader's
side). The book is the Cython `nautilus_trader.model.book.OrderBook` (L2_MBP), the one its engine uses.
"""

from __future__ import annotations

import time
from decimal import Decimal

NAME = "nautilus-trader"

try:
    import msgspec
    import nautilus_trader
    from nautilus_trader.adapters.binance.common.enums import BinanceAccountType
    from nautilus_trader.adapters.binance.common.schemas.market import (
        BinanceDataMsgWrapper, BinanceOrderBookData, BinanceOrderBookDelta, BinanceOrderBookMsg)
    from nautilus_trader.adapters.binance.common.symbol import BinanceSymbol
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue

    VERSION = nautilus_trader.__version__
    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any failure means "peer unavailable", reported by the suite
    VERSION = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = IMPORT_ERROR is None


def label(what: str) -> str:
    return f"nautilus {VERSION} {what}"


class NautilusBinanceDepth:
    """One USD-M (or spot) symbol's depth stream through NautilusTrader's decoding and book."""

    def __init__(self, usdm: bool = True):
        self.account_type = BinanceAccountType.USDT_FUTURES if usdm else BinanceAccountType.SPOT
        self.venue = Venue("BINANCE")
        self.wrapper_decoder = msgspec.json.Decoder(BinanceDataMsgWrapper)
        self.book_decoder = msgspec.json.Decoder(BinanceOrderBookMsg)
        self.instrument_ids: dict = {}

    def instrument_id(self, symbol: str):
        # data.py _get_cached_instrument_id
        nautilus_symbol = BinanceSymbol(symbol).parse_as_nautilus(self.account_type)
        instrument_id = self.instrument_ids.get(nautilus_symbol)
        if not instrument_id:
            instrument_id = InstrumentId(Symbol(nautilus_symbol), self.venue)
            self.instrument_ids[nautilus_symbol] = instrument_id
        return instrument_id

    def new_book(self, symbol: str, snapshot_id: int, bids, asks):
        """A book holding a REST snapshot (levels as wire strings), and a reset() restoring it."""
        instrument_id = self.instrument_id(symbol)
        book = OrderBook(instrument_id, BookType.L2_MBP)
        data = BinanceOrderBookData(e="depthUpdate", E=0, s=symbol, U=0, u=snapshot_id,
                                    b=[BinanceOrderBookDelta(p, q) for p, q in bids],
                                    a=[BinanceOrderBookDelta(p, q) for p, q in asks])
        snap = data.parse_to_order_book_deltas(instrument_id, 0, snapshot=True)

        def reset():
            book.clear(0)      # sequence, as peers/nautilus_book.py does
            book.apply_deltas(snap)
        reset()
        return book, reset

    def decode(self, raw: bytes):
        """Frame -> OrderBookDeltas, as the data client does before handing them to the engine."""
        wrapper = self.wrapper_decoder.decode(raw)
        assert "@depth" in wrapper.stream
        msg = self.book_decoder.decode(raw)
        return msg.data.parse_to_order_book_deltas(self.instrument_id(msg.data.s), time.time_ns())

    def wire_to_book_loop(self, book):
        wrapper_decode = self.wrapper_decoder.decode
        book_decode = self.book_decoder.decode
        instrument_id = self.instrument_id
        apply_deltas = book.apply_deltas
        now = time.time_ns

        def run(frames):
            for raw in frames:
                wrapper = wrapper_decode(raw)
                if "@depth" in wrapper.stream:
                    msg = book_decode(raw)
                    apply_deltas(msg.data.parse_to_order_book_deltas(instrument_id(msg.data.s), now()))
        return run

    def decode_loop(self):
        decode = self.decode

        def run(frames):
            for raw in frames:
                decode(raw)
        return run


def levels(book, side: str, price_precision: int, size_precision: int):
    """[(price_raw, size_raw)] best first, at extrema's precisions, for cross-checking."""
    out = []
    for level in (book.bids() if side == "bid" else book.asks()):
        out.append((round(level.price.as_decimal().scaleb(price_precision)),
                    round(Decimal(repr(level.size())).scaleb(size_precision))))
    return out
