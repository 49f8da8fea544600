"""The Binance simulator: a real HTTP + WebSocket server on 127.0.0.1 speaking one market's protocol.

Two listening sockets, each on a port the OS picks (like Binance's separate hosts): `rest_url`
(api.binance.com / fapi.binance.com) and `ws_url` (stream.binance.com / fstream.binance.com). Both are
served by aiohttp: one library for HTTP and for the websocket upgrade keeps request handling, the
upgrade and the shutdown in one event loop; the clients under test use picows, so the server side being
a different implementation is also a useful cross-check of the wire format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from ..faults import Faults
from .algo import AlgoBook
from ..generator import GeneratedMarket
from ..matching import (BUY, SELL, SPOT, USDM, MatchingEngine, Reject, SymbolSpec,
                        parse_raw)
from ..replay import CaptureReplay
from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, KeyVerifier, Limited, RateLimiter, RateLimits, check_signed
from .formats import INTERVALS_MS, Formatter, KlineSeries, dumps
from . import ws_api
from .rest import NONE, ROUTES, SIGNED, UNKNOWN_5XX, RawBody

log = logging.getLogger("extrema.sim.binance")


# Stream update speeds (ms) per market: "<sym>@depth" alone is the slow default
# (spot 1000 ms, USD-M 250 ms); 0 means every change, as it happens.
DEPTH_SPEEDS = {SPOT: {"depth": 1000, "depth@100ms": 100, "depth@1000ms": 1000},
                USDM: {"depth": 250, "depth@0ms": 0, "depth@100ms": 100, "depth@250ms": 250, "depth@500ms": 500}}
PING = {SPOT: (20.0, 60.0), USDM: (180.0, 600.0)}  # (ping interval, pong timeout) seconds
WS_MSG_PER_S = {SPOT: 5, USDM: 10}
TICK_S = 0.05


def _depth_weight(market: str, limit: int) -> int:
    if market == SPOT:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _klines_weight(market: str, limit: int) -> int:
    if market == SPOT:
        return 2
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class _DepthAcc:
    """Changed levels of one symbol since the last push of one depth speed."""

    __slots__ = ("speed", "first_id", "keys", "last_u")

    def __init__(self, speed: int, last_u: int):
        self.speed = speed
        self.first_id = None
        self.keys: set[tuple[int, int]] = set()
        self.last_u = last_u


class _Conn:
    """One websocket connection: its streams, its outgoing queue (faults and latency applied)."""

    def __init__(self, sim: "BinanceSimulator", ws: web.WebSocketResponse, combined: bool, peer: str):
        self.sim = sim
        self.ws = ws
        self.combined = combined
        self.peer = peer
        self.streams: set[str] = set()
        self.user_keys: set[str] = set()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.held: str | None = None  # a frame held back by the reorder fault
        self.last_pong = time.monotonic()
        self.opened = time.monotonic()
        self.msg_window = (0, 0)
        self.closing = False
        self.sent = 0
        self.ws_api: ws_api.WsApiState | None = None  # set on WebSocket API connections

    def push(self, text: str, market: bool = True, is_depth: bool = False):
        if self.closing:
            return
        faults = self.sim.faults
        fault = faults.frame_fault(is_depth) if market else None
        if fault in ("drop", "gap"):
            return
        if fault == "disconnect":
            self.sim._spawn(self.close(1001, "going away"))
            return
        if fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        if fault == "reorder" and self.held is None:
            self.held = text
            return
        due = time.monotonic() + faults.delay_s()
        self._put(due, text)
        if fault == "duplicate":
            self._put(due, text)
        if self.held is not None and fault != "reorder":
            held, self.held = self.held, None
            self._put(due, held)

    def push_later(self, delay_s: float, text: str):
        """A reply sent `delay_s` from now, without holding back the frames sent meanwhile."""
        async def later():
            await asyncio.sleep(delay_s)
            self.push(text, market=False)
        self.sim._spawn(later())

    def _put(self, due: float, text: str):
        if self.queue.qsize() > self.sim.max_queued_frames:
            log.warning("closing slow websocket consumer %s (%d frames queued)", self.peer, self.queue.qsize())
            self.sim.counters["slow_consumer_closed"] += 1
            self.sim._spawn(self.close(1008, "slow consumer"))
            return
        self.queue.put_nowait((due, text))

    async def writer(self):
        try:
            while True:
                due, text = await self.queue.get()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.ws.closed:
                    return
                await self.ws.send_str(text)
                self.sent += 1
        except (ConnectionResetError, RuntimeError):
            return

    async def pinger(self):
        interval, timeout = self.sim.ping_interval, self.sim.pong_timeout
        while not self.ws.closed:
            await asyncio.sleep(min(interval, 1.0) if interval > 1.0 else interval)
            now = time.monotonic()
            if now - self.opened >= self.sim.max_connection_age:
                await self.close(1000, "connection age limit")
                return
            if now - self.last_pong > timeout:
                self.sim.counters["pong_timeout_closed"] += 1
                await self.close(1008, "pong timeout")
                return
            if now - getattr(self, "_last_ping", self.opened) >= interval:
                self._last_ping = now
                try:
                    await self.ws.ping(str(int(time.time() * 1000)).encode())
                    self.sim.counters["pings_sent"] += 1
                except (ConnectionResetError, RuntimeError):
                    return

    async def close(self, code: int, message: str):
        if self.closing:
            return
        self.closing = True
        try:
            await self.ws.close(code=code, message=message.encode())
        except (ConnectionResetError, RuntimeError):
            pass


class BinanceSimulator:
    """A simulated Binance market (spot or USD-M) on 127.0.0.1.

    source    GeneratedMarket (default: seed 1, BTCUSDT) or CaptureReplay.
    faults    Faults (switchable at run time through `sim.faults`).
    api_keys  {api_key: HMAC secret str | Ed25519 public key (PEM str/bytes or object)};
              default {DEFAULT_API_KEY: DEFAULT_API_SECRET}.
    balances  starting account (spot: {asset: amount}; USD-M: {"USDT": wallet}) as decimal strings.
    fees      (maker, taker) in parts per million (spot default 1000/1000 = 0.1%, USD-M 200/500).
    rest_port, ws_port   fixed ports (default 0: any free port, see rest_url / ws_url once started).
    """

    def __init__(self, market: str = SPOT, source=None, faults: Faults | None = None, api_keys=None, *,
                 balances: dict[str, str] | None = None, fees: tuple[int, int] | None = None,
                 rate_limits: RateLimits | None = None, host: str = "127.0.0.1", ping_interval: float | None = None,
                 pong_timeout: float | None = None, max_connection_age: float = 86400.0,
                 listen_key_ttl: float = 3600.0, max_queued_frames: int = 100_000, leverage: int = 20,
                 rest_port: int = 0, ws_port: int = 0):
        if market not in (SPOT, USDM):
            raise ValueError(f"market must be {SPOT!r} or {USDM!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the simulator only listens on the loopback interface")
        self.market = market
        self.source = source if source is not None else GeneratedMarket(seed=1)
        if isinstance(self.source, CaptureReplay) and self.source.market != market:
            raise ValueError(f"the capture is {self.source.market}, the simulator {market}")
        self.faults = faults if faults is not None else Faults()
        keys = api_keys if api_keys is not None else {DEFAULT_API_KEY: DEFAULT_API_SECRET}
        self.api_keys = {k: v if isinstance(v, KeyVerifier) else KeyVerifier(v) for k, v in keys.items()}
        self.host = host
        self._ports = {"rest": rest_port, "ws": ws_port}   # 0: any free port
        self.ping_interval, self.pong_timeout = PING[market]
        if ping_interval is not None:
            self.ping_interval = ping_interval
        if pong_timeout is not None:
            self.pong_timeout = pong_timeout
        self.max_connection_age = max_connection_age
        self.listen_key_ttl = listen_key_ttl
        self.max_queued_frames = max_queued_frames
        self.specs: list[SymbolSpec] = self.source.specs(market)
        self.engine = MatchingEngine(market, self.specs, clock_ms=lambda: int(time.time() * 1000),
                                     balances=balances, fees=fees, leverage=leverage)
        self.fmt = Formatter(market, self.engine)
        self.algo = AlgoBook(self.engine)      # USD-M conditional orders (extrema.sim.binance.algo)
        self.limiter = RateLimiter(market, rate_limits or RateLimits.for_market(market))
        self.counters: Counter = Counter()
        self.conns: set[_Conn] = set()
        self.subs: dict[str, set[_Conn]] = {}
        self.listen_keys: dict[str, float] = {}  # listenKey -> expiry (time.time())
        self.ws_api_subscribers: set[_Conn] = set()  # WebSocket API connections with user data subscriptions
        self.rest_url = self.ws_url = None
        self.rest_port = self.ws_port = None
        self._runners: list[web.AppRunner] = []
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._depth: dict[str, dict[int, _DepthAcc]] = {}
        self._last_top: dict[str, tuple] = {}
        self._klines: dict[tuple[str, str], KlineSeries] = {}
        self._agg_id = {s.symbol: 1 for s in self.specs}
        self.replay_done: asyncio.Event | None = None
        self._feed_go: asyncio.Event | None = None
        self._stopping = False

    # ------------------------------------------------------------------------------- lifecycle

    async def start(self) -> "BinanceSimulator":
        self._loop = asyncio.get_running_loop()
        self.replay_done = asyncio.Event()
        self._feed_go = asyncio.Event()
        self._feed_running = asyncio.Event()
        self._feed_running.set()
        rest = web.Application(client_max_size=1 << 20)
        rest.router.add_route("*", "/{tail:.*}", self._rest)
        ws = web.Application()
        ws.router.add_get("/{tail:.*}", self._ws)
        for app, kind in ((rest, "rest"), (ws, "ws")):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self._ports[kind])
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            self._runners.append(runner)
            if kind == "rest":
                self.rest_port, self.rest_url = port, f"http://{self.host}:{port}"
            else:
                self.ws_port, self.ws_url = port, f"ws://{self.host}:{port}"
        self._init_market()
        self._spawn(self._ticker())
        self._spawn(self._feed())
        log.info("binance %s simulator: rest %s ws %s", self.market, self.rest_url, self.ws_url)
        return self

    async def stop(self):
        self._stopping = True
        for conn in list(self.conns):
            await conn.close(1001, "server shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> "BinanceSimulator":
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> "BinanceSimulator":
        """Run the simulator on its own event loop in a daemon thread; returns once it listens."""
        ready = threading.Event()
        error: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # reported to the caller below
                error.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"binance-{self.market}-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if error:
            raise error[0]
        return self

    def stop_thread(self, timeout: float = 10.0):
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def call(self, fn, *args):
        """Run `fn(*args)` on the simulator's loop (from another thread when started in a thread)."""
        if self._thread is None:
            return fn(*args)
        fut = asyncio.run_coroutine_threadsafe(self._call_async(fn, *args), self._loop)
        return fut.result(10)

    @staticmethod
    async def _call_async(fn, *args):
        return fn(*args)

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception())
            self.counters["task_errors"] += 1

    def start_feed(self):
        """Start a replay now instead of at the first market-data subscription."""
        self._feed_go.set()

    def pause_feed(self):
        """Stop generating market events (timers still push what already changed)."""
        self._feed_running.clear()

    def resume_feed(self):
        self._feed_running.set()

    def disconnect_all(self, code: int = 1001):
        """Forced disconnect of every websocket connection (counted as faults['disconnect'])."""
        for conn in list(self.conns):
            self.faults.counters["disconnect"] += 1
            self._spawn(conn.close(code, "going away"))

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    # ------------------------------------------------------------------------------ market data

    def _init_market(self):
        speeds = sorted(set(DEPTH_SPEEDS[self.market].values()))
        for spec in self.specs:
            self._depth[spec.symbol] = {s: _DepthAcc(s, 0) for s in speeds}
        src = self.source
        if isinstance(src, GeneratedMarket):
            src.init_book(self.engine)
        else:
            self._replay_reset()
        self._pump()

    def _replay_reset(self):
        """Book of every replayed symbol = its recorded snapshot (background liquidity)."""
        src: CaptureReplay = self.source
        self._replay_sync = {}
        for symbol, snap in src.snapshots.items():
            spec = self.engine.specs[symbol]
            for side, levels in ((BUY, snap.bids), (SELL, snap.asks)):
                for p, q in levels:
                    self.engine.set_level(symbol, side, parse_raw(p, spec.price_dp), parse_raw(q, spec.qty_dp))
            self._replay_sync[symbol] = [snap.last_update_id, None]
            self.engine.books[symbol].update_id = snap.last_update_id
        for book in self.engine.books.values():
            book.changed.clear()

    async def _feed(self):
        src = self.source
        if isinstance(src, GeneratedMarket):
            await self._run_generator(src)
        else:
            await self._feed_go.wait()
            while True:
                await self._run_replay(src)
                self.replay_done.set()
                if not src.loop:
                    return
                self._replay_reset()

    async def _run_generator(self, gen: GeneratedMarket):
        t0 = time.monotonic()
        sim0 = gen.sim_time
        n = 0
        while True:
            if not self._feed_running.is_set():
                await self._feed_running.wait()
                t0, sim0 = time.monotonic(), gen.sim_time
            gen.step(self.engine)
            self._pump()
            n += 1
            due = t0 + (gen.sim_time - sim0) / gen.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif n % 64 == 0:
                await asyncio.sleep(0)

    async def _run_replay(self, src: CaptureReplay):
        t0 = time.monotonic()
        ts0 = src.frames[0].ts
        for i, fr in enumerate(src.frames):
            if src.speed is not None:
                delay = t0 + (fr.ts - ts0) / src.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % 32 == 0:
                await asyncio.sleep(0)
            self._replay_apply(fr)
            self._publish(fr.stream, fr.data_text, combined_text=fr.text)
            self.counters["replayed_frames"] += 1

    def _replay_apply(self, fr):
        """Feed one recorded frame to the engine so user orders meet the recorded market."""
        d = fr.data
        symbol = (d.get("s") or "").upper()
        spec = self.engine.specs.get(symbol)
        if spec is None:
            return
        if d.get("e") == "depthUpdate":
            sync = self._replay_sync.get(symbol)
            if sync is None:
                return
            lu, prev = sync
            _U, u = int(d["U"]), int(d["u"])
            if prev is None:  # Binance's rule for the first event after the snapshot
                if (u <= lu) if self.market == SPOT else (u < lu):
                    return
            for side, key in ((BUY, "b"), (SELL, "a")):
                for p, q in d[key]:
                    pr, qr = parse_raw(p, spec.price_dp), parse_raw(q, spec.qty_dp)
                    if pr is None or qr is None:
                        self.counters["replay_bad_levels"] += 1
                        continue
                    self.engine.set_level(symbol, side, pr, qr)
            sync[1] = u
            book = self.engine.books[symbol]
            book.update_id = max(book.update_id, u)
            book.changed.clear()
        elif d.get("e") == "aggTrade":
            taker = SELL if d["m"] else BUY
            pr, qr = parse_raw(d["p"], spec.price_dp), parse_raw(d["q"], spec.qty_dp)
            if pr is None or qr is None:
                return
            self.engine.replay_trade(symbol, taker, pr, qr)
            self.engine.books[symbol].changed.clear()
        self._pump(market_data=False)

    def _pump(self, market_data: bool = True):
        """Turn what the engine did since the last call into stream messages."""
        now = self.now_ms()
        if self.market == USDM:
            self.algo.check()                  # triggers place orders: their events are in this drain
        events = self.engine.drain()
        algo_texts = [dumps(self.algo.event(self.fmt, a, now)) for a in self.algo.drain()]
        if market_data:
            for symbol, book in self.engine.books.items():
                if book.changed:
                    for acc in self._depth[symbol].values():
                        for uid, side, price in book.changed:
                            if acc.first_id is None:
                                acc.first_id = uid
                            acc.keys.add((side, price))
                    book.changed.clear()
                    self._flush_depth(symbol, 0)
                    self._book_ticker(symbol, now)
        trades: list = []
        user_orders: list = []
        assets: dict[str, None] = {}
        positions: dict[str, None] = {}
        for ev in events:
            kind = ev[0]
            if kind == "trade":
                trades.append(ev[1])
            elif kind == "order":
                user_orders.append(ev)
            elif kind == "balance":
                for a in ev[1]:
                    assets[a] = None
            elif kind == "position":
                positions[ev[1]] = None
        if trades and market_data:
            self._publish_trades(trades, now)
        elif trades:
            for t in trades:  # replay: the recorded kline frames go out as recorded; REST klines still need them
                for (sym, _), series in self._klines.items():
                    if sym == t.symbol:
                        series.add(t)
        if user_orders or positions or assets or algo_texts:
            self._publish_user(user_orders, assets, positions, now, algo_texts)

    def _flush_depth(self, symbol: str, speed: int):
        acc = self._depth[symbol].get(speed)
        if acc is None or acc.first_id is None:
            return
        book = self.engine.books[symbol]
        spec = self.engine.specs[symbol]
        bids = sorted((p for s, p in acc.keys if s == BUY), reverse=True)
        asks = sorted(p for s, p in acc.keys if s == SELL)
        u = book.update_id
        msg = self.fmt.depth_update(spec, self.now_ms(), book.last_change_time, acc.first_id, u, acc.last_u,
                                    [(p, book.qty_at(BUY, p)) for p in bids], [(p, book.qty_at(SELL, p)) for p in asks])
        acc.first_id = None
        acc.keys.clear()
        acc.last_u = u
        text = dumps(msg)
        low = symbol.lower()
        for name, sp in DEPTH_SPEEDS[self.market].items():
            if sp == speed:
                self._publish(f"{low}@{name}", text, is_depth=True)

    def _book_ticker(self, symbol: str, now: int):
        book = self.engine.books[symbol]
        top = (tuple(book.top(BUY, 1)[:1]), tuple(book.top(SELL, 1)[:1]))
        if self._last_top.get(symbol) == top:
            return
        self._last_top[symbol] = top
        stream = f"{symbol.lower()}@bookTicker"
        if not self.subs.get(stream):
            return
        bid = top[0][0] if top[0] else None
        ask = top[1][0] if top[1] else None
        msg = self.fmt.book_ticker(self.engine.specs[symbol], book.update_id, bid, ask, now, book.last_change_time)
        self._publish(stream, dumps(msg))

    def _publish_trades(self, trades, now: int):
        # aggTrade: fills of one taker order at one price
        groups: list[list] = []
        for t in trades:
            if groups and groups[-1][0].taker is t.taker and groups[-1][0].price == t.price:
                groups[-1].append(t)
            else:
                groups.append([t])
            for (sym, _), series in self._klines.items():
                if sym == t.symbol:
                    series.add(t)
        for t in trades:
            stream = f"{t.symbol.lower()}@trade"
            if self.subs.get(stream):
                self._publish(stream, dumps(self.fmt.trade(self.engine.specs[t.symbol], t, now)))
        for g in groups:
            symbol = g[0].symbol
            agg = self._agg_id[symbol]
            self._agg_id[symbol] = agg + 1
            stream = f"{symbol.lower()}@aggTrade"
            if self.subs.get(stream):
                self._publish(stream, dumps(self.fmt.agg_trade(self.engine.specs[symbol], agg, g, now)))

    def _kline_series(self, symbol: str, interval: str) -> KlineSeries:
        key = (symbol, interval)
        series = self._klines.get(key)
        if series is None:
            series = self._klines[key] = KlineSeries(interval)
        return series

    async def _ticker(self):
        """Timed pushes: depth at 100/250/500/1000 ms, klines every 1-2 s, mark price, listenKey expiry."""
        k = 0
        speeds = sorted(set(DEPTH_SPEEDS[self.market].values()) - {0})
        next_funding = (self.now_ms() // 28_800_000 + 1) * 28_800_000
        while True:
            await asyncio.sleep(TICK_S)
            k += 1
            elapsed_ms = int(k * TICK_S * 1000)
            now = self.now_ms()
            if not isinstance(self.source, CaptureReplay):
                for speed in speeds:
                    if elapsed_ms % speed == 0:
                        for symbol in self._depth:
                            self._flush_depth(symbol, speed)
                if elapsed_ms % 1000 == 0:
                    self._push_klines(now, elapsed_ms)
                if self.market == USDM and elapsed_ms % 1000 == 0:
                    self._push_mark(now, next_funding, every_s=1 if elapsed_ms % 3000 else 3)
                    if self.algo.open():
                        self._pump()           # MARK_PRICE triggers see the new mark
            if elapsed_ms % 1000 == 0:
                self._expire_listen_keys()

    def _push_klines(self, now: int, elapsed_ms: int):
        for (symbol, interval), series in self._klines.items():
            closed = series.roll(now)
            stream = f"{symbol.lower()}@kline_{interval}"
            spec = self.engine.specs[symbol]
            if closed is not None:
                self._publish(stream, dumps(self.fmt.kline(spec, closed, now, True)))
            push_every = 1000 if interval == "1s" else 2000
            if series.current is not None and series.dirty and elapsed_ms % push_every == 0:
                series.dirty = False
                self._publish(stream, dumps(self.fmt.kline(spec, series.current, now, False)))

    def _push_mark(self, now: int, next_funding: int, every_s: int):
        funding = getattr(self.source, "funding_rate", "0.00010000")
        for spec in self.specs:
            mark = self.engine.mark_price(spec.symbol)
            book = self.engine.books[spec.symbol]
            bid, ask = book.best(BUY), book.best(SELL)
            if bid is None or ask is None:
                continue
            mid = (bid + ask) // 2 // spec.tick_raw * spec.tick_raw
            self.engine.mark_prices[spec.symbol] = mid
            mark = mid
            text = dumps(self.fmt.mark_price(spec, mark, mid, funding, next_funding, now))
            low = spec.symbol.lower()
            self._publish(f"{low}@markPrice@1s", text)
            if every_s == 3:
                self._publish(f"{low}@markPrice", text)

    # ------------------------------------------------------------------------------- publishing

    def _publish(self, stream: str, data_text: str, combined_text: str | None = None, is_depth: bool = False):
        conns = self.subs.get(stream)
        if not conns:
            return
        self.counters["frames_published"] += 1
        combined = combined_text
        for conn in list(conns):
            if conn.combined:
                if combined is None:
                    combined = '{"stream":"' + stream + '","data":' + data_text + "}"
                conn.push(combined, market=True, is_depth=is_depth or "@depth" in stream)
            else:
                conn.push(data_text, market=True, is_depth=is_depth or "@depth" in stream)

    def _publish_user(self, orders, assets, positions, now: int, algo_texts=()):
        texts = list(algo_texts)
        for _, order, exec_type, fill in orders:
            if self.market == SPOT:
                texts.append(dumps(self.fmt.execution_report(order, exec_type, fill, now)))
            else:
                texts.append(dumps(self.fmt.order_trade_update(order, exec_type, fill, now)))
        if self.market == SPOT and assets:
            texts.append(dumps(self.fmt.account_position(list(assets), now)))
        if self.market == USDM and positions:
            texts.append(dumps(self.fmt.account_update(list(positions), now, self.engine.account_update_time)))
        self.counters["user_events"] += len(texts)
        if self.ws_api_subscribers and texts:
            ws_api.publish_user(self, texts)
        for key in list(self.listen_keys):
            for conn in list(self.subs.get(key, ())):
                for text in texts:
                    conn.push(text if not conn.combined else '{"stream":"' + key + '","data":' + text + "}", market=False)

    def _expire_listen_keys(self):
        now = time.time()
        for key, expiry in list(self.listen_keys.items()):
            if expiry <= now:
                del self.listen_keys[key]
                text = dumps({"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key})
                for conn in list(self.subs.get(key, ())):
                    conn.push(text, market=False)
                    self._spawn(self._close_later(conn))

    async def _close_later(self, conn: _Conn):
        await asyncio.sleep(0.05)
        await conn.close(1000, "listenKey expired")

    # ------------------------------------------------------------------------------ websocket

    def valid_stream(self, name: str) -> bool:
        if name in self.listen_keys:
            return True
        sym, _, kind = name.partition("@")
        if sym.upper() not in self.engine.specs or sym != sym.lower():
            return False
        if kind in DEPTH_SPEEDS[self.market] or kind in ("trade", "aggTrade", "bookTicker"):
            return True
        if kind.startswith("kline_") and kind[6:] in INTERVALS_MS:
            return True
        return self.market == USDM and kind in ("markPrice", "markPrice@1s")

    def _subscribe(self, conn: _Conn, name: str):
        conn.streams.add(name)
        self.subs.setdefault(name, set()).add(conn)
        sym, _, kind = name.partition("@")
        if kind.startswith("kline_"):
            self._kline_series(sym.upper(), kind[6:])
        if name not in self.listen_keys and isinstance(self.source, CaptureReplay) and self.source.autostart:
            self._feed_go.set()

    def _unsubscribe(self, conn: _Conn, name: str):
        conn.streams.discard(name)
        subs = self.subs.get(name)
        if subs is not None:
            subs.discard(conn)

    async def _ws(self, request: web.Request):
        if self.faults.refuse_connections:
            # an outage: every websocket upgrade is refused until it is switched off
            self.faults.counters["refused_connection"] += 1
            return web.Response(status=503, text="Service Unavailable")
        path = request.path
        if path == ws_api.PATHS[self.market]:
            return await self._ws_api(request)
        if path == "/stream":
            combined = True
            names = [s for s in request.query.get("streams", "").split("/") if s]
        elif path == "/ws" or path.startswith("/ws/"):
            combined = False
            names = [s for s in path[4:].split("/") if s]
        else:
            return web.Response(status=404, text="Not Found")
        bad = [n for n in names if not self.valid_stream(n)]
        if bad:
            return web.json_response({"code": -1121, "msg": f"Invalid symbol or stream: {bad[0]}"}, status=400)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = _Conn(self, ws, combined, request.remote or "?")
        self.conns.add(conn)
        self.counters["ws_connections"] += 1
        for n in names:
            self._subscribe(conn, n)
        writer = self._spawn(conn.writer())
        pinger = self._spawn(conn.pinger())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._ws_request(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    self.counters["pongs_received"] += 1
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.conns.discard(conn)
            for n in list(conn.streams):
                self._unsubscribe(conn, n)
            writer.cancel()
            pinger.cancel()
        return ws

    async def _ws_api(self, request: web.Request):
        """The WebSocket API connection (spot /ws-api/v3, USD-M /ws-fapi/v1); see ws_api.py."""
        ip = request.remote or "127.0.0.1"
        if self.market == SPOT:
            try:
                self.limiter.charge(ip, ws_api.CONNECT_WEIGHT, 0)
            except Limited as lim:
                return web.json_response({"code": lim.code, "msg": lim.msg}, status=lim.status,
                                         headers={"Retry-After": str(lim.retry_after)})
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _Conn(self, ws, False, ip)
        conn.ws_api = ws_api.WsApiState(request.query.get("returnRateLimits", "true") != "false")
        self.conns.add(conn)
        self.counters["ws_api_connections"] += 1
        writer = self._spawn(conn.writer())
        pinger = self._spawn(conn.pinger())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    ws_api.handle(self, conn, conn.ws_api, msg.data, ip)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    self.counters["pongs_received"] += 1
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.conns.discard(conn)
            self.ws_api_subscribers.discard(conn)
            writer.cancel()
            pinger.cancel()
        return ws

    async def _ws_request(self, conn: _Conn, text: str):
        # Binance: at most 5 (spot) / 10 (USD-M) incoming messages a second, else the connection is dropped.
        sec = int(time.monotonic())
        start, n = conn.msg_window
        n = n + 1 if start == sec else 1
        conn.msg_window = (sec, n)
        if n > WS_MSG_PER_S[self.market]:
            self.counters["ws_rate_closed"] += 1
            await conn.close(1008, "Too many requests")
            return
        try:
            req = json.loads(text)
        except ValueError as e:
            conn.push(dumps({"error": {"code": 3, "msg": f"Invalid JSON: {e}"}}), market=False)
            return
        rid = req.get("id") if isinstance(req, dict) else None
        if not isinstance(req, dict) or not isinstance(rid, (int, str)) or isinstance(rid, bool):
            conn.push(dumps({"error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                             "id": rid}), market=False)
            return
        method, params = req.get("method"), req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.push(dumps({"error": {"code": 2, "msg": "Invalid request: params must be a list of streams"},
                                 "id": rid}), market=False)
                return
            bad = [p for p in params if not self.valid_stream(p)]
            if bad:
                conn.push(dumps({"error": {"code": 2, "msg": f"Invalid request: invalid stream name {bad[0]!r}"},
                                 "id": rid}), market=False)
                return
            for p in params:
                (self._subscribe if method == "SUBSCRIBE" else self._unsubscribe)(conn, p)
            conn.push(dumps({"result": None, "id": rid}), market=False)
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push(dumps({"result": sorted(conn.streams), "id": rid}), market=False)
        elif method == "SET_PROPERTY":
            if params and params[0] == "combined" and len(params) == 2 and isinstance(params[1], bool):
                conn.combined = params[1]
                conn.push(dumps({"result": None, "id": rid}), market=False)
            else:
                conn.push(dumps({"error": {"code": 0, "msg": "Unknown property"}, "id": rid}), market=False)
        elif method == "GET_PROPERTY":
            if params == ["combined"]:
                conn.push(dumps({"result": conn.combined, "id": rid}), market=False)
            else:
                conn.push(dumps({"error": {"code": 0, "msg": "Unknown property"}, "id": rid}), market=False)
        else:
            conn.push(dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid}),
                      market=False)

    # ----------------------------------------------------------------------------------- REST

    async def _rest(self, request: web.Request):
        route = ROUTES[self.market].get((request.method, request.path))
        if route is None:
            return web.json_response({"code": -1000, "msg": f"Unknown endpoint {request.method} {request.path}"},
                                     status=404)
        body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
        query = request.query_string
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body:  # Binance reads a form-encoded body whatever the declared content type
            params.update(parse_qsl(body, keep_blank_values=True))
        ip = request.remote or "127.0.0.1"
        delay = self.faults.delay_s()
        if delay:
            await asyncio.sleep(delay)
        headers = {}
        fault = self.faults.request_fault(f"{request.method} {request.path}")
        if fault in ("http_418", "http_429"):
            retry = self.faults.retry_after_s
            if fault == "http_418":
                until = time.time() + retry
                return web.json_response({"code": -1003, "msg": self.limiter.ban_message(ip, until)}, status=418,
                                         headers={"Retry-After": str(retry)})
            return web.json_response({"code": -1003, "msg": f"Too many requests; current limit of IP({ip}) is "
                                      f"{self.limiter.limits.weight_per_minute} requests per minute. Please use the "
                                      "websocket for live updates to avoid polling the API."}, status=429,
                                     headers={"Retry-After": str(retry)})
        if fault == "http_5xx" and not self.faults.http_5xx_executes:
            return web.json_response(UNKNOWN_5XX, status=500)
        try:
            weight = route.weight(self, params)
        except Reject as r:
            return web.json_response({"code": r.code, "msg": r.msg}, status=r.http_status)
        try:
            self.limiter.charge(ip, weight, route.orders)
        except Limited as lim:
            self.counters[f"http_{lim.status}"] += 1
            return web.json_response({"code": lim.code, "msg": lim.msg}, status=lim.status,
                                     headers={"Retry-After": str(lim.retry_after), **self._limit_headers(ip, route)})
        headers.update(self._limit_headers(ip, route))
        try:
            if route.security != NONE:
                check_signed(self.api_keys, request.headers.get("X-MBX-APIKEY"), query, body, params, self.now_ms(),
                             signed=route.security == SIGNED)
            result = route.fn(self, params)
            status = 200
            if isinstance(result, tuple):
                result, status = result
        except Reject as r:
            result, status = {"code": r.code, "msg": r.msg}, r.http_status
            self.counters["rejects"] += 1
        self._pump()
        if fault == "http_5xx":             # served, and the answer says the outcome is unknown
            return web.json_response(UNKNOWN_5XX, status=500)
        if fault == "drop_reply":           # served; the connection closes instead of the answer
            request.transport.close()
            return web.Response(status=500)
        if fault == "slow_reply":
            await asyncio.sleep(self.faults.slow_reply_ms / 1000.0)
        text = result if isinstance(result, RawBody) else dumps(result)
        return web.Response(text=text, status=status, content_type="application/json", headers=headers)

    def _limit_headers(self, ip: str, route) -> dict[str, str]:
        h = {"X-MBX-USED-WEIGHT-1M": str(self.limiter.used_weight(ip))}
        if route.orders:
            n10, nl = self.limiter.order_counts()
            h["X-MBX-ORDER-COUNT-10S"] = str(n10)
            h["X-MBX-ORDER-COUNT-1D" if self.market == SPOT else "X-MBX-ORDER-COUNT-1M"] = str(nl)
        return h
