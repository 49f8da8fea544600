"""NautilusTrader's MessageBus as a dispatch peer: publish a prebuilt TradeTick to K subscribed handlers.

In NautilusTrader, market data reaches a strategy's handlers through `MessageBus.publish(topic, msg)`
(the DataEngine publishes on topics like `data.trades.<venue>.<symbol>`, actors subscribe handlers).
This module drives that bus directly with prebuilt `TradeTick`s, so building the ticks is excluded (an
advantage to the peer: extrema's figure includes pointing its view at a raw record).
"""

from __future__ import annotations

NAME = "nautilus-trader"

try:
    import nautilus_trader
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.model.identifiers import TraderId
    from nautilus_trader.test_kit.stubs.data import TestDataStubs

    VERSION = nautilus_trader.__version__
    IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - any failure means "peer unavailable", reported by the suite
    VERSION = None
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = IMPORT_ERROR is None
TOPIC = "data.trades.SIM.AUDUSD"


def bus_with_handlers(k: int, handler_factory):
    """A MessageBus with k handlers subscribed to TOPIC; returns (bus.publish, bus)."""
    bus = MessageBus(trader_id=TraderId("BENCH-001"), clock=TestClock())
    for i in range(k):
        bus.subscribe(TOPIC, handler_factory(i))
    return bus.publish, bus


def trade_ticks(n: int) -> list:
    """n prebuilt TradeTicks (one object repeated: the bus does not look inside)."""
    tick = TestDataStubs.trade_tick()
    return [tick] * n
