"""Generated market data: the queue-reactive order-book model, driving the matching engine.

Model
-----
Huang, W., Lehalle, C.-A. & Rosenbaum, M. (2015), "Simulating and analyzing order book data: the
queue-reactive model", Journal of the American Statistical Association 110(509):107-122
(arXiv:1312.0563).

The book is 2K queues around a reference price: bid queues Q_-1..Q_-K at b0, b0-1 tick, ..., and ask
queues Q_1..Q_K at b0+1 tick, ..., b0+K ticks. Each queue is a continuous-time jump process whose event
intensities depend on its own size n, counted in average event sizes (AES):

* limit insertion  lambda_L_i(n) = L_i / (1 + n / n_half)   (refilled at L_empty when n == 0);
* cancellation     lambda_C_i(n) = C_i * n                  (each resting unit leaves at rate C_i);
* market order     lambda_M(n)   = M  for n > 0, best queues only.

These are the shapes HLR estimate in their Model I (insertion decreasing in n, cancellation increasing
about linearly, market orders roughly flat at the best level); the closed forms and numbers here are
ours, chosen so the default book looks like a liquid BTCUSDT: a one-tick spread most of the time, a
best queue of about half a bitcoin, a few dozen events a second. Like HLR's Model III, when a best
queue empties the reference price moves one tick toward the empty side with probability `theta` (the
empty price becomes the other side's new best queue), and with probability `theta_reinit` the whole
book is redrawn around the new reference (a "regime" reset). The queues are real resting orders in
the matching engine, so generated market orders and crossing limit orders fill user orders, with price-
time priority, and user orders change the sizes the intensities see (the model reacts to the user).

Event sizes: every event moves `aes` times a factor drawn from `size_factors` (rounded to the lot).
Simulation is exact (Gillespie): the next event time is exponential with the total intensity, the
event is drawn in proportion to its intensity. Everything random comes from one `random.Random(seed)`,
so a seed reproduces the same event sequence.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .matching import BUY, SELL, SPOT, MatchingEngine, SymbolSpec, parse_raw


@dataclass
class QueueReactiveParams:
    """Intensities of the queue-reactive model (rates in events per second, sizes in AES)."""

    levels: int = 10  # K queues per side
    aes: str = "0.04"  # average event size, base asset units
    limit_rate: tuple[float, ...] = (6.0, 5.0, 4.5, 4.0, 3.5, 3.0, 2.6, 2.2, 1.9, 1.6)  # L_i
    limit_empty_rate: float = 20.0  # L when a queue is empty (gaps inside the book refill fast)
    n_half: float = 8.0
    cancel_rate: tuple[float, ...] = (0.45, 0.35, 0.3, 0.27, 0.25, 0.23, 0.22, 0.21, 0.2, 0.2)  # C_i
    market_rate: float = 1.6  # M, per side
    size_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 3.0)
    theta: float = 0.7
    theta_reinit: float = 0.02

    def limit_intensity(self, i: int, n: int) -> float:
        if n == 0:
            return self.limit_empty_rate
        return self.limit_rate[min(i, len(self.limit_rate) - 1)] / (1.0 + n / self.n_half)

    def cancel_intensity(self, i: int, n: int) -> float:
        return self.cancel_rate[min(i, len(self.cancel_rate) - 1)] * n

    def stationary_mean(self, i: int) -> float:
        """Queue size (AES) where insertion and cancellation balance: L/(1+n/h) = C n."""
        L = self.limit_rate[min(i, len(self.limit_rate) - 1)]
        C = self.cancel_rate[min(i, len(self.cancel_rate) - 1)]
        h = self.n_half
        # C n^2 / h + C n - L = 0
        return (-C + math.sqrt(C * C + 4 * C * L / h)) / (2 * C / h)


@dataclass
class GeneratedSymbol:
    """One generated instrument: its listing and where its price starts."""

    spec: SymbolSpec
    start_price: str
    params: QueueReactiveParams = field(default_factory=QueueReactiveParams)


def default_symbol(name: str, market: str) -> GeneratedSymbol:
    """Listings that look like Binance's for the usual names (any other XXXUSDT gets generic ones)."""
    name = name.upper()
    if name == "BTCUSDT":
        spec = SymbolSpec("BTCUSDT", "BTC", "USDT", tick="0.01", step="0.00001", min_notional="5") if market == SPOT \
            else SymbolSpec("BTCUSDT", "BTC", "USDT", tick="0.10", step="0.001", min_notional="100", price_precision=2)
        return GeneratedSymbol(spec, "60000.00")
    if name == "ETHUSDT":
        spec = SymbolSpec("ETHUSDT", "ETH", "USDT", tick="0.01", step="0.0001", min_notional="5") if market == SPOT \
            else SymbolSpec("ETHUSDT", "ETH", "USDT", tick="0.01", step="0.001", min_notional="20")
        return GeneratedSymbol(spec, "3000.00", QueueReactiveParams(aes="0.5"))
    if not name.endswith("USDT") or len(name) < 5:
        raise ValueError(f"no default listing for {name!r}: pass a GeneratedSymbol")
    spec = SymbolSpec(name, name[:-4], "USDT", tick="0.0001", step="0.1" if market == SPOT else "1", min_notional="5")
    return GeneratedSymbol(spec, "1.0000", QueueReactiveParams(aes="200"))


class _SymbolProcess:
    def __init__(self, gen: GeneratedSymbol):
        self.gen = gen
        self.spec = gen.spec
        self.params = gen.params
        self.tick = gen.spec.tick_raw
        start = parse_raw(gen.start_price, gen.spec.price_dp)
        if start is None or start <= 0:
            raise ValueError(f"{gen.spec.symbol}: start_price {gen.start_price!r} is not a price at tick {gen.spec.tick}")
        self.b0 = start // self.tick * self.tick  # reference best-bid price
        aes = parse_raw(gen.params.aes, gen.spec.qty_dp)
        if not aes or aes <= 0:
            raise ValueError(f"{gen.spec.symbol}: aes {gen.params.aes!r} is not a size at step {gen.spec.step}")
        self.aes = aes

    def queue_price(self, side: int, i: int) -> int:
        return self.b0 - i * self.tick if side == BUY else self.b0 + (i + 1) * self.tick

    def units(self, engine: MatchingEngine, side: int, i: int) -> int:
        qty = engine.books[self.spec.symbol].qty_at(side, self.queue_price(side, i))
        return -(-qty // self.aes)


class GeneratedMarket:
    """Market data source: the queue-reactive model over `symbols` with one seed.

    `symbols` are names with a default listing ("BTCUSDT", "ETHUSDT", any "XXXUSDT") or GeneratedSymbol.
    `speed` scales simulated time to wall time when the simulator paces it (2.0 = twice as fast).
    """

    kind = "generated"

    def __init__(self, seed: int = 1, symbols=("BTCUSDT",), *, speed: float = 1.0, funding_rate: str = "0.00010000"):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.seed = seed
        self.symbols = list(symbols)
        self.speed = speed
        self.funding_rate = funding_rate
        self.rng = random.Random(seed)
        self.procs: dict[str, _SymbolProcess] = {}
        self.events = 0
        self.sim_time = 0.0

    def specs(self, market: str) -> list[SymbolSpec]:
        self._build(market)
        return [p.spec for p in self.procs.values()]

    def _build(self, market: str):
        if self.procs:
            return
        for s in self.symbols:
            gen = s if isinstance(s, GeneratedSymbol) else default_symbol(s, market)
            self.procs[gen.spec.symbol] = _SymbolProcess(gen)

    def init_book(self, engine: MatchingEngine):
        """Fill every symbol's queues with sizes drawn around the model's balance point."""
        self._build(engine.market)
        for proc in self.procs.values():
            self._redraw(engine, proc)

    def _size(self, proc: _SymbolProcess) -> int:
        factor = self.rng.choice(proc.params.size_factors)
        step = proc.spec.step_raw
        qty = int(proc.aes * factor) // step * step
        return max(qty, step)

    def _redraw(self, engine: MatchingEngine, proc: _SymbolProcess):
        symbol = proc.spec.symbol
        book = engine.books[symbol]
        # Background liquidity anywhere is replaced by a fresh draw around the reference.
        for side in (BUY, SELL):
            for price in list(book.prices[side]):
                engine.cancel_liquidity(symbol, side, price, book.qty_at(side, price))
        for side in (BUY, SELL):
            for i in range(proc.params.levels):
                mean = proc.params.stationary_mean(i)
                n = max(1, int(self.rng.expovariate(1.0 / mean) if mean > 0 else 1))
                engine.add_liquidity(symbol, side, proc.queue_price(side, i), n * proc.aes)

    def _prune(self, engine: MatchingEngine, proc: _SymbolProcess):
        """Background liquidity that left the modelled window (after the reference moved) is cancelled."""
        symbol = proc.spec.symbol
        book = engine.books[symbol]
        K = proc.params.levels
        low = proc.queue_price(BUY, K + 1)
        high = proc.queue_price(SELL, K + 1)
        for side in (BUY, SELL):
            for price in list(book.prices[side]):
                if price < low or price > high:
                    engine.cancel_liquidity(symbol, side, price, book.qty_at(side, price))

    def step(self, engine: MatchingEngine) -> float:
        """Draw and apply the next event of the superposed processes; returns its waiting time (s)."""
        self._build(engine.market)
        rng = self.rng
        choices = []  # (intensity, proc, kind, side, i)
        total = 0.0
        for proc in self.procs.values():
            p = proc.params
            for side in (BUY, SELL):
                for i in range(p.levels):
                    n = proc.units(engine, side, i)
                    background = engine.background_qty(proc.spec.symbol, side, proc.queue_price(side, i))
                    nb = -(-background // proc.aes)
                    lam_l = p.limit_intensity(i, n)
                    lam_c = p.cancel_intensity(i, nb)
                    total += lam_l + lam_c
                    choices.append((lam_l, proc, "L", side, i))
                    if lam_c:
                        choices.append((lam_c, proc, "C", side, i))
                book = engine.books[proc.spec.symbol]
                if book.best(side) is not None:
                    # market orders hit the best queue of `side` (a sell market order for side BUY)
                    total += p.market_rate
                    choices.append((p.market_rate, proc, "M", side, 0))
        dt = rng.expovariate(total)
        pick = rng.random() * total
        for lam, proc, kind, side, i in choices:
            pick -= lam
            if pick <= 0:
                break
        self._apply(engine, proc, kind, side, i)
        self.events += 1
        self.sim_time += dt
        return dt

    def _apply(self, engine: MatchingEngine, proc: _SymbolProcess, kind: str, side: int, i: int):
        symbol = proc.spec.symbol
        book = engine.books[symbol]
        rng = self.rng
        if kind == "L":
            engine.add_liquidity(symbol, side, proc.queue_price(side, i), self._size(proc))
        elif kind == "C":
            engine.cancel_liquidity(symbol, side, proc.queue_price(side, i), self._size(proc))
        else:
            taker = SELL if side == BUY else BUY
            engine.market_flow(symbol, taker, self._size(proc))
        # Reference price dynamics (HLR Model III): a depleted best queue may move the reference.
        bid_empty = book.qty_at(BUY, proc.queue_price(BUY, 0)) == 0
        ask_empty = book.qty_at(SELL, proc.queue_price(SELL, 0)) == 0
        if (bid_empty or ask_empty) and kind in ("C", "M") and i == 0 and rng.random() < proc.params.theta:
            if side == BUY and bid_empty:
                proc.b0 -= proc.tick
            elif side == SELL and ask_empty:
                proc.b0 += proc.tick
            else:
                return
            if rng.random() < proc.params.theta_reinit:
                self._redraw(engine, proc)
            else:
                self._prune(engine, proc)

