"""Reference model (plain Python) of extrema._core.order_entry.OrderIdAllocator, the compiled next() of
extrema.execution.orders.ClientOrderIds, as it was before it was compiled; the id layout is documented in
extrema/execution/orders.py."""
from __future__ import annotations

OWNER_BITS = 6
MAX_OWNERS = 1 << OWNER_BITS
_COUNTER_END = 1 << 26
_EPOCH_S = 1_704_067_200          # 2024-01-01T00:00:00Z


class OrderIdAllocator:
    def __init__(self, clock):
        self._clock = clock
        self._start = max(1, int(clock()) - _EPOCH_S)
        if self._start >= 1 << 30:
            raise OverflowError("client order id start field exhausted (year 2058)")
        self._counter = 0

    def next(self, owner: int) -> int:
        if not 0 <= owner < MAX_OWNERS:
            raise ValueError(f"strategy index must be in 0..{MAX_OWNERS - 1}, got {owner}")
        counter = self._counter + 1
        if counter >= _COUNTER_END:
            # 67 M orders in one run: move to a fresh start second (never an earlier one).
            self._start = max(self._start + 1, int(self._clock()) - _EPOCH_S)
            counter = 1
            if self._start >= 1 << 30:
                raise OverflowError("client order id start field exhausted (year 2058)")
        self._counter = counter
        return (self._start << 32) | (counter << OWNER_BITS) | owner
