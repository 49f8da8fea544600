"""Binance market data as an engine source: one combined-stream connection per market.

What strategies subscribed to becomes Binance streams (the router merges subscriptions, so each stream
is subscribed once however many strategies share it):

    "trades"  -> <symbol>@trade          (or @aggTrade with trades="aggTrade")
    "quotes"  -> <symbol>@bookTicker
    "book"    -> <symbol>@depth@100ms    (spot; USD-M: depth_speed "0ms" | "100ms" | "250ms" | "500ms")
    "candles" -> <symbol>@kline_<interval>       (closed klines only)
    "mark_price" (USD-M) -> <symbol>@markPrice@1s

Books follow Binance's documented synchronisation ("How to manage a local order book correctly",
https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams and the USD-M page of the
same name): the diff stream is opened first and buffered, a REST snapshot is fetched, stale events are
dropped, the first kept event must straddle the snapshot id and every later one must continue the chain
(spot `U == prev u + 1`, USD-M `pu == prev u`). That bookkeeping is compiled (`DepthSync`); this module
decides when to fetch snapshots. A break in the chain, a reconnect or a failed snapshot voids the book:
strategies get a BOOK_RESET (reason SEQUENCE_GAP / RECONNECT) and the book comes back with the next
snapshot, never silently wrong.

Frames are decoded in compiled code straight into records (`BinanceDecoder`); malformed frames, unknown
symbols and venue error messages are counted in `stats()` and logged, never raised into the loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Optional

from extrema._core.binance import BinanceDecoder, DepthSync, SyncStatus
from extrema._core.binance_stream import BinanceStreamSink
from extrema._core.clock import time_us
from extrema._core.instruments import Market
from extrema._core.records import RecordKind, ResetReason
from extrema.adapters.binance.parts import VenuePart
from extrema.adapters.ws import Backoff, WsSession

log = logging.getLogger("extrema.adapters.binance")

# Binance closes a connection that sends more than this many messages per second (spot 5, USD-M 10):
# https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#websocket-limits
_SEND_RATE = {Market.BINANCE_SPOT: 5.0, Market.BINANCE_USDM: 10.0}
# A single connection can listen to at most 1024 streams (spot) / 200 (USD-M).
_MAX_STREAMS = {Market.BINANCE_SPOT: 1024, Market.BINANCE_USDM: 200}
# Records one frame may decode into (a depth diff is one per level change); a frame needing more is
# dropped and counted by the decoder (DropReason.CAPACITY).
_FRAME_RECORDS = 8192
_DEPTH_SPEEDS = {Market.BINANCE_SPOT: ("1000ms", "100ms"),
                 Market.BINANCE_USDM: ("0ms", "100ms", "250ms", "500ms")}


def stream_names(market, instrument, kind, *, trades="trade", depth_speed="100ms", kline_interval="1m"):
    """The Binance stream names that carry `kind` (a RecordKind) for an instrument."""
    sym = instrument.venue_symbol.lower()
    if kind == RecordKind.TRADE:
        return [f"{sym}@{trades}"]
    if kind == RecordKind.QUOTE:
        return [f"{sym}@bookTicker"]
    if kind == RecordKind.BOOK_DELTA:
        # Binance's 1000 ms stream is the plain "@depth" name.
        return [f"{sym}@depth" if depth_speed == "1000ms" else f"{sym}@depth@{depth_speed}"]
    if kind == RecordKind.CANDLE:
        return [f"{sym}@kline_{kline_interval}"]
    if kind == RecordKind.MARK_PRICE and market == Market.BINANCE_USDM:
        return [f"{sym}@markPrice@1s"]
    return []


class BinanceMarketData(VenuePart):
    """Source of one Binance market's public streams. See the module doc.

    ws_url      the market-stream base, e.g. wss://stream.binance.com:9443 (spot),
                wss://fstream.binance.com (USD-M), or the simulator's `ws_url`
    rest        a BinanceRest of the same market (depth snapshots)
    """

    def __init__(self, market, ws_url: str, rest, *, registry=None, trades: str = "trade",
                 depth_speed: Optional[str] = None, kline_interval: str = "1m", snapshot_limit: int = 1000,
                 snapshot_delay: float = 0.05, stale_after: float = 30.0, backoff: Optional[Backoff] = None):
        self.market = Market(market)
        if self.market not in _SEND_RATE:
            raise ValueError(f"BinanceMarketData serves BINANCE_SPOT or BINANCE_USDM, not {self.market.name}")
        if trades not in ("trade", "aggTrade"):
            raise ValueError(f"trades must be 'trade' or 'aggTrade', got {trades!r}")
        depth_speed = depth_speed or "100ms"
        if depth_speed not in _DEPTH_SPEEDS[self.market]:
            raise ValueError(f"{self.market.name} depth streams run at {_DEPTH_SPEEDS[self.market]}, "
                             f"not {depth_speed!r}")
        self.ws_url = ws_url.rstrip("/")
        self.rest = rest
        self.registry = registry
        self.trades = trades
        self.depth_speed = depth_speed
        self.kline_interval = kline_interval
        self.snapshot_limit = snapshot_limit
        # Binance: "buffer the events you receive from the stream" before asking for the snapshot, so the
        # snapshot is not older than the first buffered event.
        self.snapshot_delay = snapshot_delay
        self.stale_after = stale_after
        self._backoff = backoff
        self.decoder = None
        self.sync = None
        self.session: Optional[WsSession] = None
        self._emit = None
        self._stream_sink = None            # the compiled frame path of the running session (warm())
        self._streams: dict[str, tuple[int, int]] = {}     # stream name -> (instrument id, kind)
        self._snapshot_tasks: dict[int, asyncio.Task] = {}
        self._snapshot_backoff: dict[int, Backoff] = {}
        self._request_ids = 0
        self.counters = {"snapshots": 0, "snapshot_failures": 0, "resyncs": 0, "venue_errors": 0}
        # Raw-frame recording (extrema.storage.Recorder(raw_jsonl=...)): called with (direction, payload,
        # ts_local_us, url) for every frame and REST depth snapshot; None costs one attribute test.
        self.raw_sink = None

    # ---- engine wiring -------------------------------------------------------------------------------

    def bind_engine(self, engine):
        if self.registry is None:
            self.registry = engine.registry

    def _ensure_codec(self):
        if self.decoder is None:
            if self.registry is None:
                raise RuntimeError("BinanceMarketData needs a registry (pass registry= or add it to an engine)")
            self.decoder = BinanceDecoder(self.registry, self.market)
            self.sync = DepthSync(self.market)

    def _wanted_streams(self, subscriptions):
        wanted = {}
        for iid, kind in subscriptions:
            try:
                inst = self.registry[iid]
            except KeyError:
                continue
            if inst.market != self.market:
                continue
            for name in stream_names(self.market, inst, kind, trades=self.trades,
                                     depth_speed=self.depth_speed, kline_interval=self.kline_interval):
                wanted[name] = (iid, int(kind))
        if len(wanted) > _MAX_STREAMS[self.market]:
            raise ValueError(f"{len(wanted)} streams exceed Binance's {_MAX_STREAMS[self.market]} per connection")
        return wanted

    def _url(self):
        names = "/".join(sorted(self._streams)) or "!miniTicker@arr"   # a connection needs one stream
        return f"{self.ws_url}/stream?streams={names}"

    async def run(self, emit, subscriptions):
        self._ensure_codec()
        self._emit = emit
        self._streams = self._wanted_streams(subscriptions)
        if not self._streams:
            log.info("%s: no subscriptions for this market; idle until there are", self.market.name)
        if self.raw_sink is not None:
            self.raw_sink("connect", "", time_us(), self._url())
        # The URL carries the streams; books restart from snapshots the first diff of each instrument asks
        # for (DepthSync answers NEED_SNAPSHOT), so a snapshot is never older than the stream it joins.
        sink = self._stream_sink = BinanceStreamSink(self, self.decoder, self.sync, emit, _FRAME_RECORDS)
        self.session = WsSession(self._url, sink, on_disconnect=self._on_disconnect, name=f"binance-{self.market.name.lower()}",
                                 send_rate=_SEND_RATE[self.market], stale_after=self.stale_after,
                                 backoff=self._backoff)
        try:
            await self.session.run()
        finally:
            for task in self._snapshot_tasks.values():
                task.cancel()

    def warm(self):
        """The engine's busy-poll warm-up: decode the last frame again, changing nothing (BinanceStreamSink.warm)."""
        if self._stream_sink is not None:
            self._stream_sink.warm()

    def subscriptions_changed(self, subscriptions):
        """Subscribe / unsubscribe streams on the live connection (called on the engine thread)."""
        if self.session is None:
            return
        wanted = self._wanted_streams(subscriptions)
        added = sorted(set(wanted) - set(self._streams))
        removed = sorted(set(self._streams) - set(wanted))
        self._streams = wanted
        if self.session.connected:
            if removed:
                asyncio.ensure_future(self._send_method("UNSUBSCRIBE", removed))
            if added:
                asyncio.ensure_future(self._send_method("SUBSCRIBE", added))
                for name in added:
                    iid, kind = wanted[name]
                    if kind == RecordKind.BOOK_DELTA:
                        self._start_snapshot(iid)

    async def _send_method(self, method, params):
        self._request_ids += 1
        await self.session.send_text(json.dumps({"method": method, "params": params, "id": self._request_ids}))

    # ---- connection events -------------------------------------------------------------------------

    def _on_disconnect(self, session, reason):
        # Frames may be lost while we are away: every live book is void until its next snapshot.
        for task in self._snapshot_tasks.values():
            task.cancel()
        self._snapshot_tasks.clear()
        resets = self.sync.reset(None, ResetReason.RECONNECT, time_us())
        if len(resets) and self._emit is not None:
            self._emit(resets)

    # ---- frames ------------------------------------------------------------------------------------

    # Messages go to the compiled BinanceStreamSink (extrema._core.binance_stream): decode, book sync and the
    # engine's record path in C. It calls back here for what is rare.

    def _on_gap(self, iid, reset):
        self.counters["resyncs"] += 1
        log.warning("%s %s: depth sequence gap; book reset, resyncing", self.market.name, self.registry[iid].name)
        self._emit(reset)                       # the BOOK_RESET
        self._start_snapshot(iid)

    # ---- snapshots ---------------------------------------------------------------------------------

    def _start_snapshot(self, iid):
        task = self._snapshot_tasks.get(iid)
        if task is not None and not task.done():
            return
        self._snapshot_tasks[iid] = asyncio.ensure_future(self._fetch_snapshot(iid))

    async def _fetch_snapshot(self, iid):
        inst = self.registry[iid]
        backoff = self._snapshot_backoff.setdefault(iid, Backoff(base=0.2, cap=30.0))
        # Binance: "buffer the events you receive from the stream" and only then get the snapshot.
        await asyncio.sleep(self.snapshot_delay)
        while True:
            try:
                body = await self.rest.depth(inst.venue_symbol, self.snapshot_limit)
                received = time_us()
                if self.raw_sink is not None:
                    path = "/api/v3/depth" if self.market == Market.BINANCE_SPOT else "/fapi/v1/depth"
                    self.raw_sink("http_response", body, received, f"{self.rest.base_url}{path}?symbol="
                                  f"{inst.venue_symbol}&limit={self.snapshot_limit}")
                snapshot = self.decoder.decode_depth_snapshot(body, iid, received)
                if not len(snapshot):
                    raise ValueError(f"unreadable depth snapshot ({self.decoder.last_drop})")
                status, records = self.sync.snapshot(snapshot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counters["snapshot_failures"] += 1
                self.sync.snapshot_request_failed(iid)
                delay = backoff.next_delay()
                log.warning("%s %s: depth snapshot failed (%s: %s); the next diff asks again after %.2f s",
                            self.market.name, inst.name, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                return
            self.counters["snapshots"] += 1
            if status == SyncStatus.SYNCED:
                backoff.reset()
                self._emit(records)
                return
            if status == SyncStatus.SNAPSHOT_IGNORED:
                return
            # SNAPSHOT_TOO_OLD: the buffered stream starts after this snapshot; a newer one will do.
            self.counters["resyncs"] += 1
            await asyncio.sleep(backoff.next_delay())
