"""Order vocabulary shared by every venue: statuses, types, times in force, and client order ids.

The enums are those of records.pyx (the numbers carried in ORDER_UPDATE records: part of the journal
format, never renumbered).

Client order ids
----------------
Strategies refer to their orders by an int64 the engine issues (`context.submit` returns it; order
updates and fills carry it). Its bits say who owns the order, so the dispatcher routes an update to
its strategy with a shift and a mask, no lookup:

    bit 62..63  0                        (ids >= 2**62 are foreign: orders extrema did not place)
    bit 32..61  engine start, seconds since 2024-01-01 (30 bits: until 2058)
    bit  6..31  order counter of this engine run (26 bits: 67 M orders, then the start second moves on)
    bit  0..5   strategy index (64 strategies per engine)

On the wire the id travels as text, `ex<tag><decimal id>` with a 4-character tag (at most 2 + 4 + 19 = 25
letters and digits: inside Binance's 36 and OKX's 32 alphanumerics), where `<tag>` names the engine
instance so two engines trading one account never claim each other's orders. The id is unique across reconnects and
restarts (a restart takes a later start second), which makes a resend after a timeout idempotent: the
venue rejects a duplicate client id instead of placing a second order.
"""
from __future__ import annotations

import random
import re
import string
import time

OWNER_BITS = 6
MAX_OWNERS = 1 << OWNER_BITS
COUNTER_BITS = 26
FOREIGN_ID_BASE = 1 << 62
# (the id's fields are also written in extrema._core.order_entry, which allocates the ids)


# The order vocabulary carried in ORDER_UPDATE records is defined once, with the C enums the decoders
# write (types.pxd); re-exported here because this is where execution code looks for it.
from extrema._core.records import ExecType, OrderReason, OrderStatus, OrderType, TimeInForce  # noqa: E402
from extrema._core.order_entry import OrderIdAllocator  # noqa: E402


_TAG = re.compile(r"[a-z0-9]{4}\Z")


class ClientOrderIds(OrderIdAllocator):
    """Issues the engine's client order ids (see the module doc) and turns them into wire text and back.
    next(owner) is compiled (extrema._core.order_entry.OrderIdAllocator).

    Not thread-safe, on purpose: ids are allocated only on the engine thread (Context.submit /
    stop_order from strategy hooks, and the execution clients, which the engine calls on that thread -
    execution.client.ExecutionClient), and next() sits inside every order's tick-to-order time, where a
    lock cost ~0.2 µs. Code on another thread asks the engine thread (Engine.request / call_soon_threadsafe)."""

    def __init__(self, tag: str | None = None, *, clock=time.time):
        if tag is None:
            tag = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(4))
        if not _TAG.match(tag):
            raise ValueError(f"an engine tag is 4 lowercase letters or digits, got {tag!r}")
        super().__init__(clock)
        self.tag = tag
        self.prefix = f"ex{tag}"

    def text(self, order_id: int) -> str:
        """The wire form of one of our ids."""
        if not 0 < order_id < FOREIGN_ID_BASE:
            raise ValueError(f"{order_id} is not an id this engine issues")
        return f"{self.prefix}{order_id}"

    def parse(self, text: str) -> int | None:
        """Our id back from its wire form; None for a client id this engine did not issue."""
        if not text.startswith(self.prefix):
            return None
        digits = text[len(self.prefix):]
        # The canonical text only (what text() writes): ASCII digits, no leading zero - the compiled
        # decoder's parse (BinanceDecoder.own_client_id_prefix) applies the same rule.
        if not digits.isascii() or not digits.isdigit() or len(digits) > 19 or digits[0] == "0":
            return None
        value = int(digits)
        return value if 0 < value < FOREIGN_ID_BASE else None


def owner_of(order_id: int) -> int | None:
    """The strategy index encoded in one of the engine's ids (None for a foreign id)."""
    if not 0 < order_id < FOREIGN_ID_BASE:
        return None
    return order_id & (MAX_OWNERS - 1)
