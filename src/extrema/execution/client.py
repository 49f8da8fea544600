"""The execution-client interface and a recording test double."""
from __future__ import annotations

import abc
import dataclasses
import threading
from decimal import Decimal
from typing import Optional

# Order types a strategy can send, by name (the numbers are extrema.OrderType's). A stop order becomes
# a market / limit order at the venue when the market reaches `stop_price`; a take-profit likewise, on
# the other side of the market.
ORDER_TYPES = ("limit", "market", "stop_market", "stop_limit", "take_profit_market", "take_profit_limit")
TIMES_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD")
_NEEDS_PRICE = ("limit", "stop_limit", "take_profit_limit")
_NEEDS_STOP = ("stop_market", "stop_limit", "take_profit_market", "take_profit_limit")


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    """A new order as a strategy asks for it. Prices and sizes are exact decimals (str / Decimal)."""
    client_order_id: int            # issued by the engine (execution.orders.ClientOrderIds)
    strategy: str
    instrument: str
    side: str                       # "buy" | "sell"
    quantity: Decimal
    price: Optional[Decimal] = None  # None for market orders
    order_type: str = "limit"       # one of ORDER_TYPES
    time_in_force: str = "GTC"      # one of TIMES_IN_FORCE; GTX = post-only
    reduce_only: bool = False
    post_only: bool = False
    stop_price: Optional[Decimal] = None   # the trigger of stop / take-profit orders
    expire_time_us: Optional[int] = None   # GTD: when the venue cancels the order (µs since the epoch)

    def __post_init__(self):
        if self.side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {self.side!r}")
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"order_type must be one of {ORDER_TYPES}, got {self.order_type!r}")
        if self.time_in_force not in TIMES_IN_FORCE:
            raise ValueError(f"time_in_force must be one of {TIMES_IN_FORCE}, got {self.time_in_force!r}")
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise ValueError(f"quantity must be a positive decimal, got {self.quantity}")
        if self.order_type in _NEEDS_PRICE:
            if self.price is None or not self.price.is_finite() or self.price <= 0:
                raise ValueError(f"a {self.order_type} order needs a positive price")
        elif self.price is not None:
            raise ValueError(f"a {self.order_type} order has no price")
        if self.order_type in _NEEDS_STOP:
            if self.stop_price is None or not self.stop_price.is_finite() or self.stop_price <= 0:
                raise ValueError(f"a {self.order_type} order needs a positive stop_price")
        elif self.stop_price is not None:
            raise ValueError(f"a {self.order_type} order has no stop_price")
        if self.post_only and self.order_type != "limit":
            raise ValueError("post_only applies to limit orders")
        if (self.time_in_force == "GTD") != (self.expire_time_us is not None):
            raise ValueError("time_in_force GTD goes with expire_time_us (and only GTD has one)")


@dataclasses.dataclass(frozen=True)
class CancelRequest:
    client_order_id: int
    strategy: str


@dataclasses.dataclass(frozen=True)
class ReplaceRequest:
    client_order_id: int
    strategy: str
    price: Optional[Decimal] = None
    quantity: Optional[Decimal] = None


class ExecutionClient(abc.ABC):
    """Where orders go. Called on the engine thread; implementations must not block it (queue the
    network work on the engine's event loop). Order updates and fills come back as records.

    Optional, found by the engine when present: `compiled_orders` (True) with `order_sink()` (a compiled
    extrema._core.order_entry.OrderSink) or `submit_raw(...)` takes Context.submit's fast path for plain
    orders; `warm()` is called between events while the engine busy-polls and must change nothing
    observable (extrema.engine.warm). Sources may have a `warm()` too."""

    @abc.abstractmethod
    def submit(self, order: OrderRequest) -> None: ...

    @abc.abstractmethod
    def cancel(self, request: CancelRequest) -> None: ...

    @abc.abstractmethod
    def replace(self, request: ReplaceRequest) -> None: ...


class RecordingExecutionClient(ExecutionClient):
    """Records every request, in order, and sends nothing anywhere: for tests and dry runs."""

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()

    def submit(self, order):
        with self._lock:
            self.requests.append(order)

    def cancel(self, request):
        with self._lock:
            self.requests.append(request)

    def replace(self, request):
        with self._lock:
            self.requests.append(request)

