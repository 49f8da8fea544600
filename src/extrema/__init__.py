"""extrema: a low-latency trading engine for Python with a compiled Cython core.

Everything public is importable from here; `extrema._core` is an implementation detail.
"""
from extrema._core.records import (
    RECORD_DTYPE, RECORD_SIZE, CONTINUATION_DTYPE, RecordKind, RecordFlag, ResetReason,
    continuation_count, with_continuations, empty_records, ASSET_PRECISION, RATE_PRECISION,
    OrderStatus, OrderType, TimeInForce, ExecType, OrderReason, PositionSide, MarginType, AccountUpdateReason)
from extrema._core.fixedpoint import (
    MAX_PRECISION, parse_decimal, format_decimal, to_raw, raw_to_float)
from extrema._core.clock import time_us, monotonic_time_ns, reanchor, clock_drift_us
from extrema._core.instruments import (
    Market, InstrumentKind, InstrumentName, Instrument, InstrumentRegistry, UnknownInstrumentError,
    parse_name, format_name, asset_id, asset_code)
from extrema._core.book import OrderBook, BookSide, Side, CrossedBookError, BOOK_LEVEL_DTYPE
from extrema._core.ring import Ring, RingConsumer, RingClosedError, ProducerGoneError, sweep_stale_rings
from extrema._core.strategy import (
    Strategy, RecordView, TradeView, QuoteView, BookView, ResetView, TimerView, CandleView, OrderView, FillView,
    MarkPriceView,
    ViewExpiredError)
from extrema._core.bars import BarAggregator, Bar, candles_to_bars, BAR_DTYPE, BAR_RAW_DTYPE
from extrema._core.dispatch import Dispatcher
from extrema._core.tensor import Tensor, FeatureVector
from extrema.engine import Engine, EngineBuilder, Context, Task, FunctionTask, CommandResponse, RecordSource
from extrema import features
from extrema.execution import (
    ExecutionClient, OrderRequest, CancelRequest, ReplaceRequest, RecordingExecutionClient,
    ExecutionCore, OrderTable, OrderEventCode, IllegalTransitionError, Portfolio, AssetRegistry, RiskEngine,
    RiskRule, RiskRejection, StopManager, estimate_fill, reconcile, VenueSnapshot)
from extrema.execution.orders import ClientOrderIds

__version__ = "0.1.0"


def build_info():
    """How the compiled core was built: {'flags': ..., 'modules': {name: path}}."""
    from extrema._core import (bars, binance, book, clock, dispatch, execution, features as features_core,
                               fixedpoint, instruments, orders, portfolio, records, ring, risk, stops, strategy,
                               tensor)
    mods = (bars, binance, book, clock, dispatch, execution, features_core, fixedpoint, instruments, orders,
            portfolio, records, ring, risk, stops, strategy, tensor)
    return {"flags": records.BUILD_FLAGS, "modules": {m.__name__: m.__file__ for m in mods}}


__all__ = [
    "RECORD_DTYPE", "RECORD_SIZE", "CONTINUATION_DTYPE", "RecordKind", "RecordFlag", "ResetReason",
    "continuation_count", "with_continuations", "empty_records", "ASSET_PRECISION", "RATE_PRECISION",
    "OrderStatus", "OrderType", "TimeInForce", "ExecType", "OrderReason", "PositionSide", "MarginType",
    "AccountUpdateReason",
    "MAX_PRECISION", "parse_decimal", "format_decimal", "to_raw", "raw_to_float",
    "time_us", "monotonic_time_ns", "reanchor", "clock_drift_us",
    "Market", "InstrumentKind", "InstrumentName", "Instrument", "InstrumentRegistry",
    "UnknownInstrumentError", "parse_name", "format_name", "asset_id", "asset_code",
    "OrderBook", "BookSide", "Side", "CrossedBookError", "BOOK_LEVEL_DTYPE",
    "Ring", "RingConsumer", "RingClosedError", "ProducerGoneError", "sweep_stale_rings",
    "Strategy", "RecordView", "TradeView", "QuoteView", "BookView", "ResetView", "TimerView", "CandleView",
    "OrderView", "FillView", "MarkPriceView", "ClientOrderIds",
    "BarAggregator", "Bar", "candles_to_bars", "BAR_DTYPE", "BAR_RAW_DTYPE",
    "ViewExpiredError", "Dispatcher", "Tensor", "FeatureVector",
    "Engine", "EngineBuilder", "Context", "Task", "FunctionTask", "CommandResponse", "RecordSource",
    "ExecutionClient", "OrderRequest", "CancelRequest", "ReplaceRequest", "RecordingExecutionClient",
    "ExecutionCore", "OrderTable", "OrderEventCode", "IllegalTransitionError", "Portfolio", "AssetRegistry",
    "RiskEngine", "RiskRule", "RiskRejection", "StopManager", "estimate_fill", "reconcile", "VenueSnapshot",
    "features", "build_info",
]
