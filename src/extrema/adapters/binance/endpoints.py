"""The Binance REST endpoints this adapter calls: path, method, security type and request weight.

Weights are the documented IP weights (X-MBX-USED-WEIGHT-*) and order counts (X-MBX-ORDER-COUNT-*):
  spot   https://developers.binance.com/docs/binance-spot-api-docs/rest-api (each endpoint's "Weight")
  USD-M  https://developers.binance.com/docs/derivatives/usds-margined-futures (each endpoint's
         "Request Weight"; order placement and modification cost 0 IP weight and 1 order)
The simulator serves the same table, so both sides count alike.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Union

__all__ = ["Endpoint", "SPOT_ENDPOINTS", "USDM_ENDPOINTS", "NONE", "SIGNED", "USER_STREAM",
           "spot_depth_weight", "usdm_depth_weight", "usdm_klines_weight", "SPOT_DEPTH_LIMITS_MAX",
           "USDM_DEPTH_LIMITS", "KLINE_INTERVALS", "endpoint_table", "find"]

NONE = "NONE"                # public market data
SIGNED = "SIGNED"            # TRADE / USER_DATA: X-MBX-APIKEY + timestamp + signature
USER_STREAM = "USER_STREAM"  # listenKey management: X-MBX-APIKEY only

SPOT_DEPTH_LIMITS_MAX = 5000
USDM_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")

Weight = Union[int, Callable[[Mapping[str, object]], int]]


def spot_depth_weight(params: Mapping[str, object]) -> int:
    """GET /api/v3/depth: limit 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250 (default 100)."""
    limit = int(params.get("limit") or 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def usdm_depth_weight(params: Mapping[str, object]) -> int:
    """GET /fapi/v1/depth: limit 5/10/20/50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20 (default 500)."""
    limit = int(params.get("limit") or 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def usdm_klines_weight(params: Mapping[str, object]) -> int:
    """GET /fapi/v1/klines: limit [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, >1000 -> 10 (default 500)."""
    limit = int(params.get("limit") or 500)
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def spot_my_trades_weight(params: Mapping[str, object]) -> int:
    """GET /api/v3/myTrades: 20, or 5 when orderId is given."""
    return 5 if params.get("orderId") is not None else 20


def _open_orders(with_symbol: int, without: int) -> Callable[[Mapping[str, object]], int]:
    return lambda params: with_symbol if params.get("symbol") else without


@dataclasses.dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    security: str
    weight: Weight
    orders: int = 0              # order-count cost (ORDERS limiters)
    idempotent: bool = True      # safe to resend when the outcome is unknown

    def weight_for(self, params: Mapping[str, object]) -> int:
        return self.weight(params) if callable(self.weight) else self.weight

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


SPOT_ENDPOINTS: Dict[str, Endpoint] = {
    "ping": Endpoint("GET", "/api/v3/ping", NONE, 1),
    "time": Endpoint("GET", "/api/v3/time", NONE, 1),
    "exchange_info": Endpoint("GET", "/api/v3/exchangeInfo", NONE, 20),
    "depth": Endpoint("GET", "/api/v3/depth", NONE, spot_depth_weight),
    "klines": Endpoint("GET", "/api/v3/klines", NONE, 2),
    "new_order": Endpoint("POST", "/api/v3/order", SIGNED, 1, orders=1, idempotent=False),
    "cancel_order": Endpoint("DELETE", "/api/v3/order", SIGNED, 1, idempotent=False),
    "cancel_replace": Endpoint("POST", "/api/v3/order/cancelReplace", SIGNED, 1, orders=1, idempotent=False),
    "query_order": Endpoint("GET", "/api/v3/order", SIGNED, 4),
    "open_orders": Endpoint("GET", "/api/v3/openOrders", SIGNED, _open_orders(6, 80)),
    "account": Endpoint("GET", "/api/v3/account", SIGNED, 20),
    "my_trades": Endpoint("GET", "/api/v3/myTrades", SIGNED, spot_my_trades_weight),
    # Retired on Binance spot since 2026-02-20 (CHANGELOG 2026-01-21): see BinanceRest.create_listen_key.
    "create_listen_key": Endpoint("POST", "/api/v3/userDataStream", USER_STREAM, 2),
    "keepalive_listen_key": Endpoint("PUT", "/api/v3/userDataStream", USER_STREAM, 2),
    "close_listen_key": Endpoint("DELETE", "/api/v3/userDataStream", USER_STREAM, 2),
}

USDM_ENDPOINTS: Dict[str, Endpoint] = {
    "ping": Endpoint("GET", "/fapi/v1/ping", NONE, 1),
    "time": Endpoint("GET", "/fapi/v1/time", NONE, 1),
    "exchange_info": Endpoint("GET", "/fapi/v1/exchangeInfo", NONE, 1),
    "depth": Endpoint("GET", "/fapi/v1/depth", NONE, usdm_depth_weight),
    "klines": Endpoint("GET", "/fapi/v1/klines", NONE, usdm_klines_weight),
    "new_order": Endpoint("POST", "/fapi/v1/order", SIGNED, 0, orders=1, idempotent=False),
    "cancel_order": Endpoint("DELETE", "/fapi/v1/order", SIGNED, 1, idempotent=False),
    "modify_order": Endpoint("PUT", "/fapi/v1/order", SIGNED, 0, orders=1, idempotent=False),
    "query_order": Endpoint("GET", "/fapi/v1/order", SIGNED, 1),
    "open_orders": Endpoint("GET", "/fapi/v1/openOrders", SIGNED, _open_orders(1, 40)),
    "account": Endpoint("GET", "/fapi/v2/account", SIGNED, 5),
    "my_trades": Endpoint("GET", "/fapi/v1/userTrades", SIGNED, 5),
    # Conditional orders (STOP_MARKET, STOP, TAKE_PROFIT(_MARKET), TRAILING_STOP_MARKET) live in Binance's
    # algo service since 2025-12: https://developers.binance.com/docs/derivatives/usds-margined-futures/
    # trade/rest-api/New-Algo-Order (weight 0, one order), Cancel / Query Algo Order (1), Current Open
    # Algo Orders (1 with a symbol, 40 without).
    "new_algo_order": Endpoint("POST", "/fapi/v1/algoOrder", SIGNED, 0, orders=1, idempotent=False),
    "cancel_algo_order": Endpoint("DELETE", "/fapi/v1/algoOrder", SIGNED, 1, idempotent=False),
    "query_algo_order": Endpoint("GET", "/fapi/v1/algoOrder", SIGNED, 1),
    "open_algo_orders": Endpoint("GET", "/fapi/v1/openAlgoOrders", SIGNED, _open_orders(1, 40)),
    "position_risk": Endpoint("GET", "/fapi/v2/positionRisk", SIGNED, 5),
    "set_leverage": Endpoint("POST", "/fapi/v1/leverage", SIGNED, 1),   # absolute value: idempotent
    "create_listen_key": Endpoint("POST", "/fapi/v1/listenKey", USER_STREAM, 1),
    "keepalive_listen_key": Endpoint("PUT", "/fapi/v1/listenKey", USER_STREAM, 1),
    "close_listen_key": Endpoint("DELETE", "/fapi/v1/listenKey", USER_STREAM, 1),
}


def endpoint_table(market: str) -> Dict[str, Endpoint]:
    return SPOT_ENDPOINTS if market == "spot" else USDM_ENDPOINTS


def find(market: str, method: str, path: str) -> Optional[Endpoint]:
    """The endpoint for an HTTP method and path (e.g. for a server computing weights)."""
    for ep in endpoint_table(market).values():
        if ep.method == method and ep.path == path:
            return ep
    return None
