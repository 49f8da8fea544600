"""The backtest's simulation models: latency, queue position and fees. Each is a small, documented value
object that the compiled simulated exchange (extrema._core.backtest.SimExchange) reads once at start;
pass another instance to Backtest(latency=..., queue=..., fees=...) to change the model.

Two clocks
----------
Every replayed record has an *exchange* time (when the venue's book changed or the trade printed) and a
*local* time (its ts_local: when the strategy sees it). The simulated exchange applies the record to its
book at the exchange time; the engine (the strategy) sees it at the local time. An order sent at local
time t reaches the exchange at t + entry latency; what the exchange answers (acknowledgement, fills,
cancel, rejection) reaches the strategy `response` later. This is the model of hftbacktest
(https://hftbacktest.readthedocs.io/en/latest/latency_models.html).

Queue position
--------------
A resting order keeps an estimate of the size ahead of it at its price (`front`). Trades at its price
consume the queue ahead first; the part of a trade beyond the queue fills the order (maker). A trade
through its price, or the replayed book's other side moving through it, fills it fully. What is ahead of
you can never exceed what rests at the level (both models clamp the estimate to the level's size).
"""
from __future__ import annotations

import dataclasses

# Numbers shared with _core/backtest.pyx
_LAT_CONSTANT, _LAT_DATA = 0, 1
_LAT_FIXED, _LAT_FEED_LATEST, _LAT_FEED_PERCENTILE = 0, 1, 2
_QUEUE_CONSERVATIVE, _QUEUE_PROBABILISTIC = 0, 1
_PROB_POWER, _PROB_LOG = 0, 1


@dataclasses.dataclass(frozen=True)
class ConstantLatency:
    """Fixed latencies in microseconds.

    feed_us: how long before its ts_local the exchange saw a record (exchange time = ts_local - feed_us;
    the strategy still sees it at ts_local). entry_us: strategy -> exchange for new orders, cancels and
    replaces. response_us: exchange -> strategy for order updates and fills. All 0 is the optimistic
    "instant" venue."""
    feed_us: int = 0
    entry_us: int = 0
    response_us: int = 0

    def __post_init__(self):
        for name in ("feed_us", "entry_us", "response_us"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"ConstantLatency.{name} must be an int >= 0 (microseconds), got {v!r}")

    def _sim_kwargs(self):
        return dict(latency_mode=_LAT_CONSTANT, feed_us=self.feed_us, entry_us=self.entry_us,
                    response_us=self.response_us)


@dataclasses.dataclass(frozen=True)
class DataLatency:
    """Latencies taken from the data's two timestamps.

    The exchange time of a record is its ts_exchange (its ts_local when it has none, or when the clocks
    disagree so that ts_exchange > ts_local); the feed latency is ts_local - ts_exchange.
    entry_us / response_us: a fixed figure in microseconds, or None to use the feed latency observed in the
    data (the round trip of an order is assumed to look like the market data's one-way trip):
    `percentile=None` takes the latest observed feed latency, `percentile=p` the p-th percentile of the
    last `window` observations; either is multiplied by `scale`."""
    entry_us: int | None = None
    response_us: int | None = None
    percentile: float | None = None
    window: int = 4096
    scale: float = 1.0

    def __post_init__(self):
        for name in ("entry_us", "response_us"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ValueError(f"DataLatency.{name} must be None or an int >= 0 (microseconds), got {v!r}")
        if self.percentile is not None and not 0 <= self.percentile <= 100:
            raise ValueError(f"DataLatency.percentile must be in 0..100, got {self.percentile}")
        if self.window < 1:
            raise ValueError("DataLatency.window must be >= 1")
        if not self.scale >= 0:
            raise ValueError("DataLatency.scale must be >= 0")

    def _sim_kwargs(self):
        derived = _LAT_FEED_LATEST if self.percentile is None else _LAT_FEED_PERCENTILE
        return dict(latency_mode=_LAT_DATA,
                    entry_mode=_LAT_FIXED if self.entry_us is not None else derived,
                    response_mode=_LAT_FIXED if self.response_us is not None else derived,
                    entry_us=self.entry_us or 0, response_us=self.response_us or 0, latency_scale=self.scale,
                    percentile=50.0 if self.percentile is None else float(self.percentile),
                    latency_window=self.window)


@dataclasses.dataclass(frozen=True)
class ConservativeQueue:
    """You join the back of the queue at your price when your order arrives (everything resting there is
    ahead of you); only trades at your price advance you; cancels never move you forward (a decrease of
    the level is assumed to come from behind you) - except that what is ahead of you can never exceed the
    level's size. The pessimistic bound (hftbacktest's RiskAdverseQueueModel)."""

    def _sim_kwargs(self):
        return dict(queue_kind=_QUEUE_CONSERVATIVE)


@dataclasses.dataclass(frozen=True)
class ProbabilisticQueue:
    """Like ConservativeQueue, and a decrease of the level that is not explained by trades at that price
    (a cancel) came from ahead of you with probability 1 - f(back) / (f(back) + f(front)), where front is
    the size ahead of you and back the size behind: f(x) = x ** n ("power", n = 1, 2, 3... ; larger n means
    cancels come more from the larger side) or f(x) = log(1 + x) ("log"). The queue ahead moves by the
    expected amount: front -= (1 - p) * change (and by the overflow when the back cannot absorb p * change).
    The model of hftbacktest's ProbQueueModel (after https://quant.stackexchange.com/q/3782); here trades
    at the level are subtracted from the next decrease, so a trade is never counted as a cancel too."""
    function: str = "power"
    n: float = 2.0

    def __post_init__(self):
        if self.function not in ("power", "log"):
            raise ValueError(f"ProbabilisticQueue.function must be 'power' or 'log', got {self.function!r}")
        if self.function == "power" and not self.n > 0:
            raise ValueError(f"ProbabilisticQueue.n must be > 0, got {self.n}")

    def _sim_kwargs(self):
        return dict(queue_kind=_QUEUE_PROBABILISTIC, prob_fn=_PROB_POWER if self.function == "power" else _PROB_LOG,
                    prob_n=float(self.n))


@dataclasses.dataclass(frozen=True)
class Fees:
    """Maker and taker fee rates as fractions of the notional (0.0002 = 2 bps; negative = a rebate), charged
    in the instrument's quote asset. Backtest(fees=Fees(...)) for every instrument, or a dict
    {instrument name: Fees} (instruments not in it pay nothing)."""
    maker: float = 0.0
    taker: float = 0.0

    def __post_init__(self):
        for name in ("maker", "taker"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v != v or abs(v) >= 1:
                raise ValueError(f"Fees.{name} must be a rate (a fraction of notional, |rate| < 1), got {v!r}")
