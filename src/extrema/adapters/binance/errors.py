"""Binance errors as one exception hierarchy, mapped from the venue's error codes and HTTP statuses.

Every exception raised by the Binance adapter derives from `BinanceError` and carries what is needed to
act on it: the Binance `code` and `msg` (None when the venue sent none), the `endpoint` ("POST
/api/v3/order") and the HTTP `status`.

What a caller usually needs to decide is *did it execute?*:

* `ExecutionStatusUnknown` / `OrderStatusUnknown` - the request may have reached the matching engine
  (timeout after sending, HTTP 5xx, -1006 / -1007). Never resend blindly: query the order by its client
  id (`origClientOrderId`) or wait for the user-data stream.
* every other `BinanceAPIError` - the venue answered and did not execute the request.
* `BinanceConnectionError` - the request never left (connection refused, DNS, connect timeout).

Codes follow the venues' own tables; a few codes mean different things on spot and USD-M futures
(-2021, -2022), so the mapping is per market:
  https://developers.binance.com/docs/binance-spot-api-docs/errors
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""
from __future__ import annotations

from typing import Optional

__all__ = [
    "BinanceError", "BinanceConnectionError", "DeadlineExceeded", "InvalidResponseError", "InvalidClientOrderId",
    "BinanceAPIError", "RateLimitError", "IPBannedError", "TimestampError", "AuthenticationError",
    "InvalidSignatureError", "ApiKeyRejectedError", "InvalidRequestError", "FilterError",
    "OrderRejectedError", "InsufficientBalanceError", "ReduceOnlyRejectedError", "PostOnlyRejectedError",
    "DuplicateOrderError", "CancelRejectedError", "OrderNotFoundError", "UnknownOrderError",
    "CancelReplaceError", "ServerBusyError", "ExecutionStatusUnknown", "OrderStatusUnknown",
    "error_from_response", "SPOT", "USDM", "RETRY", "QUERY", "FINAL", "retry_class", "RetriesExhausted",
]

SPOT = "spot"
USDM = "usdm"


class BinanceError(Exception):
    """Base of every error the Binance adapter raises."""

    def __init__(self, message: str, *, code: Optional[int] = None, msg: Optional[str] = None,
                 endpoint: Optional[str] = None, status: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.msg = msg
        self.endpoint = endpoint
        self.status = status


class BinanceConnectionError(BinanceError):
    """The request certainly never reached Binance (connect failed or timed out before sending)."""


class DeadlineExceeded(BinanceError):
    """The call's deadline passed before the (next) request could be sent; nothing more was sent."""


class InvalidResponseError(BinanceError):
    """A successful HTTP status with a body that is not what the docs describe (not JSON, oversized)."""


class InvalidClientOrderId(ValueError, BinanceError):
    """A client order id that Binance would reject (`^[\\.A-Z\\:/a-z0-9_-]{1,36}$`); raised before sending."""


class BinanceAPIError(BinanceError):
    """Binance answered with an error: the request was not executed (see ExecutionStatusUnknown for the
    cases where that is not known)."""

    def __init__(self, message: str, *, code=None, msg=None, endpoint=None, status=None, data=None):
        super().__init__(message, code=code, msg=msg, endpoint=endpoint, status=status)
        self.data = data


class RateLimitError(BinanceAPIError):
    """HTTP 429 / -1003 / -1015, or a request the client's own weight budget would have to hold longer
    than the caller's deadline. `retry_after` is the wait in seconds (None when the venue gave none)."""

    def __init__(self, message, *, retry_after: Optional[float] = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class IPBannedError(RateLimitError):
    """HTTP 418: the IP is banned for `retry_after` seconds (2 minutes to 3 days, growing with repeats)."""


class TimestampError(BinanceAPIError):
    """-1021: `timestamp` outside `recvWindow` of the server clock (the client re-syncs and retries once)."""


class AuthenticationError(BinanceAPIError):
    """The key, signature or permissions were refused."""


class InvalidSignatureError(AuthenticationError):
    """-1022: the signature does not verify (wrong secret, or a payload changed after signing)."""


class ApiKeyRejectedError(AuthenticationError):
    """-2014 / -2015 / -1002: bad key format, unknown key, IP not whitelisted or missing permission."""


class InvalidRequestError(BinanceAPIError):
    """-11xx and other malformed-request codes: a parameter is missing, unknown, malformed or invalid."""


class FilterError(InvalidRequestError):
    """A symbol filter refused the order: -1013 (spot filter failure), -1111 (precision), -4164 (USD-M min
    notional), tick / step / percent-price violations."""


class OrderRejectedError(BinanceAPIError):
    """The matching engine rejected a new order (-2010 and the USD-M order-specific codes)."""


class InsufficientBalanceError(OrderRejectedError):
    """Not enough balance (-2010 'insufficient balance' on spot, -2018) or margin (-2019)."""


class ReduceOnlyRejectedError(OrderRejectedError):
    """USD-M -2022 (and relatives): a reduce-only order would increase the position."""


class PostOnlyRejectedError(OrderRejectedError):
    """A post-only order would have taken: USD-M -5022 (GTX), spot LIMIT_MAKER -2010 'would immediately
    match and take'."""


class DuplicateOrderError(OrderRejectedError):
    """The client order id is already used by an open order (-2010 'Duplicate order sent.', USD-M -4116)."""


class OrderNotFoundError(BinanceAPIError):
    """-2013: no order with that id (query), or -2011 'Unknown order sent.' (cancel)."""


class CancelRejectedError(BinanceAPIError):
    """-2011: the cancel was rejected (most often: the order is already filled / cancelled / unknown)."""


class UnknownOrderError(CancelRejectedError, OrderNotFoundError):
    """-2011 'Unknown order sent.': a cancel for an order the venue does not know (or no longer has open)."""


class CancelReplaceError(BinanceAPIError):
    """Spot cancel-replace failed (-2022, HTTP 400) or partially failed (-2021, HTTP 409). `data` holds the
    venue's per-leg results: cancelResult / newOrderResult and cancelResponse / newOrderResponse."""

    @property
    def cancel_succeeded(self) -> bool:
        return bool(self.data) and self.data.get("cancelResult") == "SUCCESS"

    @property
    def new_order_succeeded(self) -> bool:
        return bool(self.data) and self.data.get("newOrderResult") == "SUCCESS"


class ServerBusyError(BinanceAPIError):
    """The venue refused to process the request (-1001 / -1004 / -1008, USD-M 503 'Service Unavailable.'):
    certainly not executed, safe to retry later."""


class ExecutionStatusUnknown(BinanceError):
    """The request may or may not have been executed (timeout after sending, HTTP 5xx, -1006 / -1007).
    Binance: 'It is important to NOT treat this as a failure operation; the execution status is UNKNOWN
    and could have been a success.' Reconcile by querying; never resend blindly."""


class OrderStatusUnknown(ExecutionStatusUnknown):
    """An order request (new / cancel / replace) whose outcome is unknown. `client_order_id` is the id to
    query with `query_order(symbol, client_order_id=...)`; `operation` says what was attempted."""

    def __init__(self, message, *, client_order_id: str, operation: str, symbol: Optional[str] = None, **kw):
        super().__init__(message, **kw)
        self.client_order_id = client_order_id
        self.operation = operation
        self.symbol = symbol


class RetriesExhausted(BinanceError):
    """Every send the retry policy allowed failed and none of them executed (each answer said so, or the
    venue's order query showed it never arrived). `last` is the last failure."""

    def __init__(self, message, *, last: BinanceError):
        super().__init__(message, code=last.code, msg=last.msg, endpoint=last.endpoint, status=last.status)
        self.last = last


# --- what a failed request allows (retry.RetryPolicy acts on it) ----------------------------------------

RETRY = "retry"     # certainly not executed and transient: the same request may go again after a back-off
QUERY = "query"     # may have executed: ask the venue (order by client id) before anything else
FINAL = "final"     # the venue answered and refused: sending it again gets the same answer


def retry_class(exc: BaseException) -> str:
    """RETRY, QUERY or FINAL for an error of an order request, from the venues' own words:

    RETRY  the connection was never made or the request never left (BinanceConnectionError,
           DeadlineExceeded); HTTP 429 / 418 and -1003 / -1015 (RateLimitError: "the request was not
           executed", wait Retry-After); -1001 / -1004 / -1008 and USD-M 503 "Service Unavailable."
           (ServerBusyError: "unable to process your request"); -1021 (TimestampError: outside recvWindow,
           refused before matching).
    QUERY  HTTP 5xx other than those, -1000 / -1006 / -1007, a timeout after sending, a connection lost
           before the answer (ExecutionStatusUnknown): "the execution status is UNKNOWN and could have been
           a success" (spot errors.md, -1006 / -1007; USD-M general info, HTTP 503 / 5XX); a 2xx answer the
           client cannot read (InvalidResponseError) - the request ran, its result is unknown.
    FINAL  every other answer of the venue (filters, balance, auth, unknown order, ...).
    https://developers.binance.com/docs/binance-spot-api-docs/errors
    https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info (HTTP Return Codes)"""
    if isinstance(exc, (ExecutionStatusUnknown, InvalidResponseError)):
        return QUERY
    if isinstance(exc, (BinanceConnectionError, DeadlineExceeded, RateLimitError, ServerBusyError, TimestampError)):
        return RETRY
    return FINAL


# --- mapping -------------------------------------------------------------------------------------------

# Codes that mean the same on spot and USD-M futures.
_COMMON = {
    -1000: ExecutionStatusUnknown,  # UNKNOWN: "An unknown error occurred while processing the request."
    -1001: ServerBusyError,          # DISCONNECTED: "Internal error; unable to process your request."
    -1002: ApiKeyRejectedError,      # UNAUTHORIZED
    -1003: RateLimitError,           # TOO_MANY_REQUESTS (also carried by 429 / 418 bodies)
    -1004: ServerBusyError,          # SERVER_BUSY
    -1006: ExecutionStatusUnknown,   # UNEXPECTED_RESP: "Execution status unknown."
    -1007: ExecutionStatusUnknown,   # TIMEOUT: "Send status unknown; execution status unknown."
    -1008: ServerBusyError,          # SERVER_BUSY / request throttled by system-level protection
    -1013: FilterError,              # spot: "Filter failure: ..."; futures: invalid message
    -1015: RateLimitError,           # TOO_MANY_ORDERS
    -1021: TimestampError,           # INVALID_TIMESTAMP
    -1022: InvalidSignatureError,    # INVALID_SIGNATURE
    -1111: FilterError,              # BAD_PRECISION
    -2010: OrderRejectedError,       # NEW_ORDER_REJECTED
    -2011: CancelRejectedError,      # CANCEL_REJECTED
    -2013: OrderNotFoundError,       # NO_SUCH_ORDER
    -2014: ApiKeyRejectedError,      # BAD_API_KEY_FMT
    -2015: ApiKeyRejectedError,      # REJECTED_MBX_KEY: invalid key, IP or permissions
}

_SPOT = {
    -2021: CancelReplaceError,       # "Order cancel-replace partially failed." (HTTP 409)
    -2022: CancelReplaceError,       # "Order cancel-replace failed."
}

_USDM = {
    -2018: InsufficientBalanceError,   # BALANCE_NOT_SUFFICIENT
    -2019: InsufficientBalanceError,   # MARGIN_NOT_SUFFICIEN
    -2020: OrderRejectedError,         # UNABLE_TO_FILL
    -2021: OrderRejectedError,         # ORDER_WOULD_IMMEDIATELY_TRIGGER
    -2022: ReduceOnlyRejectedError,    # REDUCE_ONLY_REJECT
    -2024: ReduceOnlyRejectedError,    # POSITION_NOT_SUFFICIENT
    -2025: OrderRejectedError,         # MAX_OPEN_ORDER_EXCEEDED
    -2026: ReduceOnlyRejectedError,    # REDUCE_ONLY_ORDER_TYPE_NOT_SUPPORTED
    -2027: OrderRejectedError,         # MAX_LEVERAGE_RATIO
    -2028: OrderRejectedError,         # MIN_LEVERAGE_RATIO
    -4003: FilterError,                # QTY_LESS_THAN_ZERO
    -4004: FilterError,                # QTY_LESS_THAN_MIN_QTY
    -4005: FilterError,                # QTY_GREATER_THAN_MAX_QTY
    -4013: FilterError,                # PRICE_LESS_THAN_MIN_PRICE
    -4014: FilterError,                # PRICE_NOT_INCREASED_BY_TICK_SIZE
    -4015: InvalidRequestError,        # INVALID_CL_ORD_ID_LEN
    -4016: FilterError,                # PRICE_HIGHTER_THAN_MULTIPLIER_UP
    -4023: FilterError,                # QTY_NOT_INCREASED_BY_STEP_SIZE
    -4024: FilterError,                # PRICE_LOWER_THAN_MULTIPLIER_DOWN
    -4116: DuplicateOrderError,        # DUPLICATED_CLIENT_TRAN_ID
    -4118: ReduceOnlyRejectedError,    # REDUCE_ONLY_MARGIN_CHECK_FAILED
    -4131: FilterError,                # MARKET_ORDER_REJECT (PERCENT_PRICE)
    -4164: FilterError,                # MIN_NOTIONAL
    -5021: OrderRejectedError,         # FOK order rejected (would not fill completely)
    -5022: PostOnlyRejectedError,      # GTX order rejected (would take)
    -5028: TimestampError,             # timestamp for this request is outside the recvWindow
}

# Spot reuses -2010 / -2011 for many reasons; the message tells them apart (errors.md, "Messages for
# -1010 ERROR_MSG_RECEIVED, -2010 NEW_ORDER_REJECTED, and -2011 CANCEL_REJECTED").
_MESSAGES = (
    ("insufficient balance", InsufficientBalanceError),
    ("would immediately match and take", PostOnlyRejectedError),
    ("duplicate order", DuplicateOrderError),
    ("unknown order", UnknownOrderError),
)


def _class_for(market: str, status: int, code: Optional[int], msg: str):
    if status == 418:
        return IPBannedError
    if status == 429:
        return RateLimitError
    if code is not None:
        table = _SPOT if market == SPOT else _USDM
        cls = table.get(code) or _COMMON.get(code)
        if code in (-2010, -2011):
            low = msg.lower()
            for needle, refined in _MESSAGES:
                if needle in low:
                    return refined
        if cls is not None:
            return cls
        if -1199 <= code <= -1100:
            return InvalidRequestError       # 11xx: request issues
        if market == USDM and -4999 <= code <= -4000:
            return InvalidRequestError       # 40xx: filters and other request issues
        if market == USDM and -2999 <= code <= -2000:
            return OrderRejectedError
    if status == 503 and market == USDM and msg.strip().rstrip(".").lower() == "service unavailable":
        # USD-M general info: 503 "Service Unavailable." is a failure, the request was not executed.
        return ServerBusyError
    if status >= 500 or status == 408:
        return ExecutionStatusUnknown
    if code is None and 400 <= status < 500:
        return InvalidRequestError
    return BinanceAPIError


def error_from_response(market: str, status: int, code: Optional[int], msg: Optional[str], endpoint: str, *,
                        retry_after: Optional[float] = None, data=None) -> BinanceError:
    """The exception for an error response: HTTP `status`, Binance `code` / `msg` (None when the body had
    none), `endpoint` like 'POST /api/v3/order'. ExecutionStatusUnknown comes back for answers that do not
    say whether the request ran; callers turn it into OrderStatusUnknown where an order id is at stake."""
    text = msg or ""
    cls = _class_for(market, status, code, text)
    where = f"{endpoint} -> HTTP {status}"
    message = f"{where}: {code} {text}" if code is not None else f"{where}: {text or 'no error body'}"
    if issubclass(cls, ExecutionStatusUnknown):
        return cls(message, code=code, msg=msg, endpoint=endpoint, status=status)
    kw = dict(code=code, msg=msg, endpoint=endpoint, status=status, data=data)
    if issubclass(cls, RateLimitError):
        return cls(message, retry_after=retry_after, **kw)
    return cls(message, **kw)
