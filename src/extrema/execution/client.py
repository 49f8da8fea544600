"""The execution-client interface and a recording test double."""
from __future__ import annotations

import abc
import dataclasses
import threading
from decimal import Decimal
from typing import Optional

_ORDER_TYPES = ("limit", "market")
_TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    """A new order as a strategy asks for it. Prices and sizes are exact decimals (str / Decimal)."""
    client_order_id: int            # issued by the engine (execution.orders.ClientOrderIds)
    strategy: str
    instrument: str
    side: str                       # "buy" | "sell"
    quantity: Decimal
    price: Optional[Decimal] = None  # None for market orders
    order_type: str = "limit"
    time_in_force: str = "GTC"
    reduce_only: bool = False
    post_only: bool = False

    def __post_init__(self):
        if self.side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {self.side!r}")
        if self.order_type not in _ORDER_TYPES:
            raise ValueError(f"order_type must be one of {_ORDER_TYPES}, got {self.order_type!r}")
        if self.time_in_force not in _TIME_IN_FORCE:
            raise ValueError(f"time_in_force must be one of {_TIME_IN_FORCE}, got {self.time_in_force!r}")
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise ValueError(f"quantity must be a positive decimal, got {self.quantity}")
        if self.order_type == "limit" and (self.price is None or not self.price.is_finite()):
            raise ValueError("a limit order needs a finite price")
        if self.order_type == "market" and self.price is not None:
            raise ValueError("a market order has no price")


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
    network work on the engine's event loop). Order updates and fills come back as records."""

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

    def of_type(self, cls):
        return [r for r in self.requests if isinstance(r, cls)]
