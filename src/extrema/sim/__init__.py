"""extrema.sim - the bundled exchange simulator: real servers on 127.0.0.1 speaking Binance's protocol.

Quick start
-----------
::

    from extrema.sim import BinanceSimulator, GeneratedMarket, CaptureReplay, Faults

    async with BinanceSimulator(market="usdm",                       # or "spot"
                                source=GeneratedMarket(seed=1, symbols=["BTCUSDT", "ETHUSDT"]),
                                faults=Faults(),
                                api_keys={"my-key": "my-hmac-secret"}) as sim:
        sim.rest_url   # "http://127.0.0.1:<port>"  (api.binance.com / fapi.binance.com)
        sim.ws_url     # "ws://127.0.0.1:<port>"    (stream.binance.com / fstream.binance.com)
        sim.faults.drop_rate = 0.01                  # switch faults at run time
        sim.faults.inject("gap")                     # ... or arm one
        sim.faults.counters                          # what was injected

    sim = BinanceSimulator(market="spot").start_in_thread()   # its own loop in a daemon thread
    ...
    sim.stop_thread()

`api_keys` maps an API key to its HMAC secret (str) or its Ed25519 public key (PEM or object); without it
the simulator accepts `DEFAULT_API_KEY` / `DEFAULT_API_SECRET` (Binance's documented example pair).
Other options: `balances`, `fees` (maker/taker ppm), `rate_limits` (`RateLimits`), `ping_interval`,
`pong_timeout`, `max_connection_age` (24 h), `listen_key_ttl` (60 min), `leverage`.

Market data sources
-------------------
* `GeneratedMarket(seed, symbols, speed)` - the queue-reactive order-book model of Huang, Lehalle &
  Rosenbaum (2015), see `extrema.sim.generator`; one internal book per symbol, in the matching engine,
  from which depth diffs, trades, aggTrades, bookTicker, klines and mark prices are all derived.
* `CaptureReplay(ws_jsonl, http_jsonl, speed=1.0 | None, loop=False)` (or `CaptureReplay.bundled(market,
  captures_dir)`) - recorded frames re-sent with their original text, the recorded depth snapshot served
  verbatim; starts at the first market-data subscription (or `sim.start_feed()`); `sim.replay_done` is
  set at its end.

Endpoints (all on `rest_url`; signed ones need `X-MBX-APIKEY`, `timestamp`, `signature`)
----------------------------------------------------------------------------------------
spot   GET /api/v3/ping, /time, /exchangeInfo, /depth, /klines; POST|DELETE|GET /api/v3/order;
       POST /api/v3/order/cancelReplace; GET|DELETE /api/v3/openOrders; GET /api/v3/account;
       POST|PUT|DELETE /api/v3/userDataStream
USD-M  GET /fapi/v1/ping, /time, /exchangeInfo, /depth, /klines; POST|PUT|DELETE|GET /fapi/v1/order;
       GET /fapi/v1/openOrders; DELETE /fapi/v1/allOpenOrders; GET /fapi/v2/account, /fapi/v3/account,
       /fapi/v2/positionRisk, /fapi/v2/balance; POST /fapi/v1/leverage; POST|PUT|DELETE /fapi/v1/listenKey
Every reply carries `X-MBX-USED-WEIGHT-1M` (order endpoints also `X-MBX-ORDER-COUNT-10S` and
`-1D` / `-1M`); over the limits: 429 + Retry-After, then 418 (ban).

Websocket (on `ws_url`): `/ws/<stream>` (raw), `/stream?streams=a/b/c` (combined), live
`SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` / `SET_PROPERTY` / `GET_PROPERTY`. Streams
`<sym>@depth` / `@depth@100ms` (spot, also `@depth@1000ms`), USD-M `@depth` / `@depth@0ms` / `@100ms` /
`@250ms` / `@500ms` (with `pu`), `@trade`, `@aggTrade`, `@bookTicker`, `@kline_<interval>`, USD-M
`@markPrice` / `@markPrice@1s`; user data on `/ws/<listenKey>` (spot `executionReport` +
`outboundAccountPosition`, USD-M `ORDER_TRADE_UPDATE` + `ACCOUNT_UPDATE`, `listenKeyExpired`). The server
pings (spot every 20 s, USD-M every 3 min), drops connections that stop answering, and closes them at 24 h.

WebSocket API (on `ws_url`, see `extrema.sim.binance.ws_api`): spot `/ws-api/v3`, USD-M `/ws-fapi/v1`;
`{"id", "method", "params"}` requests routed into the same REST handlers and matching engine (`order.place`,
`order.cancel`, `order.status`, spot `order.cancelReplace` / `openOrders.status` / `openOrders.cancelAll`,
USD-M `order.modify`, `ping`, `time`, `depth`, account queries), signatures over the sorted params,
`session.logon` (Ed25519 keys) / `session.status` / `session.logout`, `rateLimits` in every answer, and
spot user data on the connection (`userDataStream.subscribe.signature`, `{"subscriptionId", "event"}`).

The matching engine (`extrema.sim.matching`) documents how user orders meet the simulated flow.
"""

from .binance import DEFAULT_API_KEY, DEFAULT_API_SECRET, BinanceSimulator, RateLimits
from .faults import Faults
from .generator import GeneratedMarket, GeneratedSymbol, QueueReactiveParams
from .matching import MatchingEngine, Reject, SymbolSpec
from .replay import CaptureReplay

__all__ = ["BinanceSimulator", "GeneratedMarket", "GeneratedSymbol", "QueueReactiveParams", "CaptureReplay",
           "Faults", "RateLimits", "MatchingEngine", "SymbolSpec", "Reject", "DEFAULT_API_KEY",
           "DEFAULT_API_SECRET"]
