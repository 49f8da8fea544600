"""Binance adapter: REST client, WebSocket API order entry (ws_api.py), request signing, rate limits, errors and symbol mapping.

    from extrema.adapters.binance import BinanceRest, BinanceCredentials, register_exchange_info

Spot (`Market.BINANCE_SPOT`, /api/v3) and USD-M futures (`Market.BINANCE_USDM`, /fapi). See rest.py for
the request rules (deadlines, retries, idempotency), ratelimit.py for weights and 429 / 418, signing.py
for the signature formats, symbols.py for names and instrument registration, errors.py for exceptions.
"""
from .errors import (
    BinanceError, BinanceConnectionError, DeadlineExceeded, InvalidResponseError, InvalidClientOrderId,
    BinanceAPIError, RateLimitError, IPBannedError, TimestampError, AuthenticationError, InvalidSignatureError,
    ApiKeyRejectedError, InvalidRequestError, FilterError, OrderRejectedError, InsufficientBalanceError,
    ReduceOnlyRejectedError, PostOnlyRejectedError, DuplicateOrderError, CancelRejectedError,
    OrderNotFoundError, UnknownOrderError, CancelReplaceError, ServerBusyError, ExecutionStatusUnknown,
    OrderStatusUnknown, error_from_response)
from .signing import (
    BinanceCredentials, encode_params, format_param, sign_query, hmac_sha256_hex, ws_api_payload,
    sign_ws_api_params, fix_logon_payload)
from .symbols import (
    SymbolRules, SkippedSymbol, name_from_symbol_info, venue_symbol_for_name, guess_name, name_for_symbol,
    parse_exchange_info, register_exchange_info, strip_decimal)
from .ratelimit import RateLimit, RateLimiter, SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS, parse_retry_after
from .endpoints import Endpoint, SPOT_ENDPOINTS, USDM_ENDPOINTS
from .rest import (
    BinanceRest, Balance, ReplaceResult, ClockSample, validate_client_order_id, SPOT_BASE_URL, USDM_BASE_URL)
from .ws_api import BinanceWsApi, WsApiResponse, SPOT_WS_API_URL, USDM_WS_API_URL

__all__ = [
    "BinanceError", "BinanceConnectionError", "DeadlineExceeded", "InvalidResponseError", "InvalidClientOrderId",
    "BinanceAPIError", "RateLimitError", "IPBannedError", "TimestampError", "AuthenticationError",
    "InvalidSignatureError", "ApiKeyRejectedError", "InvalidRequestError", "FilterError", "OrderRejectedError",
    "InsufficientBalanceError", "ReduceOnlyRejectedError", "PostOnlyRejectedError", "DuplicateOrderError",
    "CancelRejectedError", "OrderNotFoundError", "UnknownOrderError", "CancelReplaceError", "ServerBusyError",
    "ExecutionStatusUnknown", "OrderStatusUnknown", "error_from_response",
    "BinanceCredentials", "encode_params", "format_param", "sign_query", "hmac_sha256_hex", "ws_api_payload",
    "sign_ws_api_params", "fix_logon_payload",
    "SymbolRules", "SkippedSymbol", "name_from_symbol_info", "venue_symbol_for_name", "guess_name",
    "name_for_symbol", "parse_exchange_info", "register_exchange_info", "strip_decimal",
    "RateLimit", "RateLimiter", "SPOT_DEFAULT_LIMITS", "USDM_DEFAULT_LIMITS", "parse_retry_after",
    "Endpoint", "SPOT_ENDPOINTS", "USDM_ENDPOINTS",
    "BinanceRest", "Balance", "ReplaceResult", "ClockSample", "validate_client_order_id",
    "SPOT_BASE_URL", "USDM_BASE_URL", "SPOT_WS_API_URL",
    "BinanceWsApi", "WsApiResponse", "USDM_WS_API_URL",
]
