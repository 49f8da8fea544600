# `cimport extrema` gives Cython users the compiled data model and order book.
from extrema._core.types cimport *
from extrema._core.book cimport OrderBook, BookStatus
from extrema._core.clock cimport now_us, monotonic_ns
from extrema._core.fixedpoint cimport parse_fixed, format_fixed, FixedStatus
from extrema._core.strategy cimport Strategy, RecordView, TradeView, QuoteView, BookView, ResetView, TimerView
from extrema._core.ring cimport Ring, RingConsumer
# Orders, risk and positions: the engine's ExecutionCore and its parts, for Cython strategies and venue code.
from extrema._core.orders cimport OrderTable, OrderEntry
from extrema._core.portfolio cimport Portfolio, Position
from extrema._core.risk cimport RiskEngine, RiskResult
from extrema._core.stops cimport StopManager
from extrema._core.execution cimport ExecutionCore
