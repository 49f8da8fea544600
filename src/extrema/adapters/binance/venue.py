"""One Binance market as a venue the engine plugs in: `EngineBuilder(registry).venue(BinanceVenue(...))`.

    venue = BinanceVenue(Market.BINANCE_SPOT, credentials=BinanceCredentials(key, secret))
    venue.load_instruments(registry)                    # exchangeInfo -> tick, lot, min notional
    engine = EngineBuilder(registry).venue(venue).strategy(MyStrategy(), subscribe=...).build()

Against the bundled simulator (paper trading, tests, the demo) only the URLs change:

    venue = BinanceVenue.for_simulator(sim)             # sim: a running extrema.sim.BinanceSimulator
"""
from __future__ import annotations

import asyncio
from typing import Optional

from extrema._core.instruments import Market
from extrema.adapters.binance.execution import BinanceExecution
from extrema.adapters.binance.market_data import BinanceMarketData
from extrema.adapters.binance.rest import BinanceRest, SPOT_BASE_URL, USDM_BASE_URL
from extrema.adapters.binance.signing import BinanceCredentials
from extrema.adapters.binance.symbols import register_exchange_info
from extrema.adapters.binance.ws_api import SPOT_WS_API_URL, USDM_WS_API_URL

# Market-stream hosts (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams,
# .../derivatives/usds-margined-futures/websocket-market-streams).
SPOT_STREAM_URL = "wss://stream.binance.com:9443"
USDM_STREAM_URL = "wss://fstream.binance.com"


class BinanceVenue:
    """Market data (a source), and with credentials the user data stream (a source) and order entry
    (the execution client), of one Binance market."""

    def __init__(self, market, *, credentials: Optional[BinanceCredentials] = None,
                 rest_url: Optional[str] = None, ws_url: Optional[str] = None,
                 ws_api_url: Optional[str] = None, order_entry: str = "ws_api", registry=None,
                 rest_options: Optional[dict] = None, market_data_options: Optional[dict] = None,
                 execution_options: Optional[dict] = None):
        self.market = Market(market)
        if self.market not in (Market.BINANCE_SPOT, Market.BINANCE_USDM):
            raise ValueError(f"BinanceVenue serves BINANCE_SPOT or BINANCE_USDM, not {self.market.name}")
        spot = self.market == Market.BINANCE_SPOT
        self.rest_url = rest_url or (SPOT_BASE_URL if spot else USDM_BASE_URL)
        self.ws_url = ws_url or (SPOT_STREAM_URL if spot else USDM_STREAM_URL)
        self.ws_api_url = ws_api_url or (SPOT_WS_API_URL if spot else USDM_WS_API_URL)
        self.credentials = credentials
        self._rest_options = dict(rest_options or {})
        self.rest = BinanceRest(self.market, self.rest_url, credentials, **self._rest_options)
        self.market_data = BinanceMarketData(self.market, self.ws_url, self.rest, registry=registry,
                                             **(market_data_options or {}))
        self.execution = (BinanceExecution(self.market, self.rest, self.ws_url, ws_api_url=self.ws_api_url,
                                           order_entry=order_entry, registry=registry,
                                           **(execution_options or {}))
                          if credentials is not None else None)

    @classmethod
    def for_simulator(cls, sim, *, credentials: Optional[BinanceCredentials] = None, **options):
        """The venue pointed at a running simulator (its market, URLs and, by default, its test keys)."""
        from extrema.sim.binance import DEFAULT_API_KEY, DEFAULT_API_SECRET
        if credentials is None:
            credentials = BinanceCredentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET)
        market = Market.BINANCE_SPOT if sim.market == "spot" else Market.BINANCE_USDM
        ws_api_path = "/ws-api/v3" if market == Market.BINANCE_SPOT else "/ws-fapi/v1"
        return cls(market, credentials=credentials, rest_url=sim.rest_url, ws_url=sim.ws_url,
                   ws_api_url=sim.ws_url + ws_api_path, **options)

    # ---- the shape EngineBuilder.venue expects ------------------------------------------------------

    def sources(self):
        return [self.market_data] + ([self.execution] if self.execution is not None else [])

    def execution_client(self):
        return self.execution

    def markets(self):
        return [self.market]

    # ---- set-up ------------------------------------------------------------------------------------

    def load_instruments(self, registry, symbols=None):
        """Register the market's TRADING symbols (or only `symbols`, venue names like 'BTCUSDT') from
        exchangeInfo; returns the instruments. Blocking: call it before the engine starts."""
        async def fetch():
            async with BinanceRest(self.market, self.rest_url, self.credentials, **self._rest_options) as rest:
                return await rest.exchange_info()
        info = asyncio.run(fetch())
        if symbols is not None:
            wanted = set(symbols)
            info = dict(info, symbols=[s for s in info["symbols"] if s["symbol"] in wanted])
            missing = wanted - {s["symbol"] for s in info["symbols"]}
            if missing:
                raise KeyError(f"{self.market.name} exchangeInfo has no symbol {', '.join(sorted(missing))}")
        return register_exchange_info(registry, self.market, info)
