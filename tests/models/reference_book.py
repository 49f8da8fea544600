"""Plain-Python reference L2 order book: the oracle the compiled `extrema.OrderBook` is tested against.

It follows the order-book contract of the foundation API (SPEC: "Order book", "Records") with the
simplest data structure that can be trusted at a glance: one `sortedcontainers.SortedDict` per side,
mapping a raw int64 price to a raw int64 size. Nothing here is optimised, and nothing imports extrema.

Conventions
-----------
* Prices and sizes are raw ints: value * 10**precision (price_precision / size_precision).
* Every derived float (vwap, microprice, mid, spread, slippage, imbalance, depth, user prices) is
  computed exactly with `fractions.Fraction` from the raw ints and rounded to float once, at the end,
  so the oracle is the correctly rounded true value. Tests compare compiled floats to these with a
  relative tolerance, and raw ints exactly.
* Book sides are BID=0 / ASK=1 (extrema.BookSide); order sides are BUY=0 / SELL=1 (extrema.Side).
  A BUY order consumes asks, a SELL order consumes bids. vwap / slippage of size 0 is nan (nothing
  to fill, like a book too thin); a negative size is a ValueError.

Message semantics (where the SPEC leaves room, the choice made here is stated)
------------------------------------------------------------------------------
* A message is a run of deltas ending with `last=True` (or a record flagged LAST), or one
  `apply_snapshot`. The crossed-book policy is applied when a message ends, if best bid >= best ask
  (a locked book counts as crossed: one venue cannot rest both sides at one price):
    - "flag":  keep the levels, set `is_crossed`, count it in stats["crossed"];
    - "raise": the same, then raise CrossedBookError (the levels stay applied);
    - "prune": the side of the most recently set level (size > 0) wins: every opposite-side level at
      or through that side's best price is removed; the book is then not crossed. Counted as well.
* Update ids: `update_id < last_update_id` drops a delta as stale (stats["stale"]); equal ids are
  accepted (all deltas of one exchange message share its id). An applied delta sets last_update_id.
  Id 0 means "the venue gave none": never stale, and last_update_id is left as it is.
* Invalid input (negative size, price not a multiple of `tick`, a value that cannot be read exactly)
  raises ValueError and changes nothing; a stale delta is dropped before its content is looked at.
  A snapshot is all or nothing: every level is checked before the book changes.
* Records: a SNAPSHOT-flagged record opens a snapshot message if none is open, which empties the book
  and takes the record's sequence as last_update_id (snapshot records are never stale); the snapshot
  ends at the record flagged LAST, or at the next non-snapshot delta record (a snapshot cut short by
  an error must not make the next one merge into it). A rejected record (strict=False) or one that
  raises (strict=True) has no effect at all.
* `clear()` (and a BOOK_RESET record) empties both sides and returns last_update_id, is_crossed and
  the message state to those of a new book; stats are cumulative and survive it.
"""

from __future__ import annotations

import copy as _copy
import math
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from sortedcontainers import SortedDict

BID, ASK = 0, 1  # book sides, as extrema.BookSide
BUY, SELL = 0, 1  # order / aggressor sides, as extrema.Side
CROSSED_POLICIES = ("flag", "raise", "prune")

# Record layout values from the SPEC, repeated here so the model stays independent of extrema.
KIND_BOOK_DELTA = 1
KIND_BOOK_RESET = 4
FLAG_ASK = 0x1
FLAG_SNAPSHOT = 0x2
FLAG_LAST = 0x4

NAN = float("nan")


class CrossedBookError(Exception):
    """Raised by the "raise" policy when a message leaves the book crossed (levels stay applied)."""


def to_raw(value, precision: int) -> int:
    """A user value as a raw int at `precision`, exactly, or ValueError.

    str / bytes / Decimal are taken exactly; an int is whole units; a float must be exact at the
    precision in its shortest round-trip form (repr), e.g. 0.1 at precision 1 is raw 1.
    """
    if isinstance(value, bool):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, int):
        return value * 10**precision
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        dec = Decimal(repr(value))
    elif isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            dec = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"malformed decimal: {value!r}") from None
    elif isinstance(value, Decimal):
        dec = value
    else:
        raise TypeError(f"unsupported value type: {type(value).__name__}")
    if not dec.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    scaled = Fraction(dec) * 10**precision
    if scaled.denominator != 1:
        raise ValueError(f"{value!r} has more than {precision} decimals")
    return int(scaled)


def _as_float(exact: Fraction | int) -> float:
    return float(Fraction(exact))


class ReferenceBook:
    def __init__(
        self,
        price_precision: int,
        size_precision: int,
        *,
        tick: int = 1,
        instrument_id: int = 0,
        crossed: str = "flag",
    ):
        if not (0 <= price_precision <= 18 and 0 <= size_precision <= 18):
            raise ValueError("precisions must be in [0, 18]")
        if tick < 1:
            raise ValueError("tick must be >= 1")
        if crossed not in CROSSED_POLICIES:
            raise ValueError(f"crossed must be one of {CROSSED_POLICIES}, not {crossed!r}")
        self.price_precision = price_precision
        self.size_precision = size_precision
        self.tick = tick
        self.instrument_id = instrument_id
        self.crossed = crossed
        self.stats = {"stale": 0, "rejected": 0, "crossed": 0}
        self._sides = (SortedDict(), SortedDict())  # BID, ASK: price_raw -> size_raw
        self._reset_state()

    def _reset_state(self) -> None:
        self._sides[BID].clear()
        self._sides[ASK].clear()
        self.last_update_id = 0
        self.is_crossed = False
        self._last_set_side: int | None = None  # side of the latest size > 0 level since the last message end
        self._snapshot_open = False  # a SNAPSHOT record was applied and its LAST not seen yet

    # ----------------------------------------------------------------------------------- validation

    def _problem(self, price_raw: int, size_raw: int) -> str | None:
        if size_raw < 0:
            return f"negative size {size_raw}"
        if price_raw % self.tick != 0:
            return f"price {price_raw} is not a multiple of tick {self.tick}"
        return None

    # --------------------------------------------------------------------------------------- writes

    def _set_level(self, side: int, price_raw: int, size_raw: int) -> None:
        levels = self._sides[side]
        if size_raw == 0:
            levels.pop(price_raw, None)  # deleting an absent level is a no-op
        else:
            levels[price_raw] = size_raw
            self._last_set_side = side

    def _crosses(self) -> bool:
        bids, asks = self._sides
        return bool(bids) and bool(asks) and bids.peekitem(-1)[0] >= asks.peekitem(0)[0]

    def _end_message(self) -> None:
        winner, self._last_set_side = self._last_set_side, None
        self._snapshot_open = False
        if not self._crosses():
            self.is_crossed = False
            return
        self.stats["crossed"] += 1
        if self.crossed == "prune":
            bids, asks = self._sides
            if winner == ASK:
                for bid in list(bids.irange(minimum=asks.peekitem(0)[0])):
                    del bids[bid]
            else:
                for ask in list(asks.irange(maximum=bids.peekitem(-1)[0])):
                    del asks[ask]
            self.is_crossed = False
            return
        self.is_crossed = True
        if self.crossed == "raise":
            raise CrossedBookError(
                f"crossed book: best bid {self.best_bid_raw} >= best ask {self.best_ask_raw}"
            )

    def _is_stale(self, update_id: int) -> bool:
        if update_id != 0 and update_id < self.last_update_id:
            self.stats["stale"] += 1
            return True
        return False

    def apply_delta(self, side: int, price_raw: int, size_raw: int, update_id: int = 0, last: bool = True) -> bool:
        if self._is_stale(update_id):
            return False
        problem = self._problem(price_raw, size_raw)
        if problem:
            raise ValueError(problem)
        self._set_level(int(side), price_raw, size_raw)
        if update_id != 0:
            self.last_update_id = update_id
        if last:
            self._end_message()
        return True

    def update(self, side: int, price, size) -> None:
        """One level from user values, as one message without an update id."""
        self.apply_delta(side, to_raw(price, self.price_precision), to_raw(size, self.size_precision))

    def apply_snapshot(self, bids, asks, update_id: int = 0) -> None:
        """Replace the whole book with raw (price, size) int pairs, as one message."""
        bids, asks = list(bids), list(asks)
        for price, size in bids + asks:
            problem = self._problem(price, size)
            if problem:
                raise ValueError(problem)
        self._reset_state()
        for side, pairs in ((BID, bids), (ASK, asks)):
            for price, size in pairs:
                self._set_level(side, price, size)
        self.last_update_id = update_id
        self._end_message()

    def apply_snapshot_values(self, bids, asks, update_id: int = 0) -> None:
        """apply_snapshot from user values (see to_raw)."""
        bids = [(to_raw(p, self.price_precision), to_raw(q, self.size_precision)) for p, q in bids]
        asks = [(to_raw(p, self.price_precision), to_raw(q, self.size_precision)) for p, q in asks]
        self.apply_snapshot(bids, asks, update_id)

    def clear(self) -> None:
        self._reset_state()

    def apply_records(self, records, strict: bool = True) -> int:
        """Apply the BOOK_DELTA / BOOK_RESET records of this instrument from a RECORD_DTYPE array."""
        applied = 0
        for index in range(len(records)):
            rec = records[index]
            if int(rec["instrument_id"]) != self.instrument_id:
                continue
            kind = int(rec["kind"])
            if kind == KIND_BOOK_RESET:
                self.clear()
                applied += 1
                continue
            if kind != KIND_BOOK_DELTA:
                continue
            flags = int(rec["flags"])
            price, size, update_id = int(rec["price"]), int(rec["quantity"]), int(rec["sequence"])
            snapshot = bool(flags & FLAG_SNAPSHOT)
            if not snapshot:
                self._snapshot_open = False  # a delta record after snapshot records: the snapshot is over
                if self._is_stale(update_id):
                    continue
            problem = self._problem(price, size)
            if problem:
                if flags & FLAG_LAST:
                    self._snapshot_open = False  # a rejected LAST still ends its message's snapshot
                if strict:
                    raise ValueError(f"record {index}: {problem}")
                self.stats["rejected"] += 1
                continue
            if snapshot:
                if not self._snapshot_open:
                    self._reset_state()
                    self._snapshot_open = True
                    self.last_update_id = update_id
            elif update_id != 0:
                self.last_update_id = update_id
            self._set_level(ASK if flags & FLAG_ASK else BID, price, size)
            applied += 1
            if flags & FLAG_LAST:
                self._end_message()  # may raise CrossedBookError: the records after it are not applied
        return applied

    # ---------------------------------------------------------------------------------------- reads

    def _best_first(self, side: int):
        """(price, size) pairs of one side, best first."""
        levels = self._sides[side]
        prices = reversed(levels) if side == BID else iter(levels)
        return ((price, levels[price]) for price in prices)

    def levels(self, side: int, n: int | None = None) -> list[tuple[int, int]]:
        out = list(self._best_first(int(side)))
        return out if n is None else out[:n]

    @property
    def bid_count(self) -> int:
        return len(self._sides[BID])

    @property
    def ask_count(self) -> int:
        return len(self._sides[ASK])

    @property
    def best_bid_raw(self) -> int | None:
        return self._sides[BID].peekitem(-1)[0] if self._sides[BID] else None

    @property
    def best_ask_raw(self) -> int | None:
        return self._sides[ASK].peekitem(0)[0] if self._sides[ASK] else None

    @property
    def best_bid_size_raw(self) -> int:
        return self._sides[BID].peekitem(-1)[1] if self._sides[BID] else 0

    @property
    def best_ask_size_raw(self) -> int:
        return self._sides[ASK].peekitem(0)[1] if self._sides[ASK] else 0

    # int / int true division in Python is correctly rounded: the same float as via Fraction, faster.
    def price_float(self, price_raw: int | None) -> float:
        return NAN if price_raw is None else price_raw / 10**self.price_precision

    def size_float(self, size_raw: int) -> float:
        return size_raw / 10**self.size_precision

    @property
    def best_bid(self) -> float:
        return self.price_float(self.best_bid_raw)

    @property
    def best_ask(self) -> float:
        return self.price_float(self.best_ask_raw)

    @property
    def best_bid_size(self) -> float:
        return self.size_float(self.best_bid_size_raw)

    @property
    def best_ask_size(self) -> float:
        return self.size_float(self.best_ask_size_raw)

    def bbo(self) -> tuple[float, float, float, float]:
        return (self.best_bid, self.best_bid_size, self.best_ask, self.best_ask_size)

    def _both_sides(self) -> bool:
        return bool(self._sides[BID]) and bool(self._sides[ASK])

    @property
    def spread(self) -> float:
        if not self._both_sides():
            return NAN
        return _as_float(Fraction(self.best_ask_raw - self.best_bid_raw, 10**self.price_precision))

    @property
    def mid(self) -> float:
        if not self._both_sides():
            return NAN
        return _as_float(Fraction(self.best_ask_raw + self.best_bid_raw, 2 * 10**self.price_precision))

    @property
    def microprice(self) -> float:
        """(bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz)."""
        if not self._both_sides():
            return NAN
        bid_px, bid_sz = self.best_bid_raw, self.best_bid_size_raw
        ask_px, ask_sz = self.best_ask_raw, self.best_ask_size_raw
        return _as_float(Fraction(bid_px * ask_sz + ask_px * bid_sz, (bid_sz + ask_sz) * 10**self.price_precision))

    def imbalance(self, levels: int = 1) -> float:
        """(B - A) / (B + A), B and A the total size of the best `levels` levels per side."""
        bid_qty = sum(size for _, size in self.levels(BID, levels))
        ask_qty = sum(size for _, size in self.levels(ASK, levels))
        if bid_qty + ask_qty == 0:
            return NAN
        return _as_float(Fraction(bid_qty - ask_qty, bid_qty + ask_qty))

    def size_at_raw(self, side: int, price_raw: int) -> int:
        return self._sides[int(side)].get(price_raw, 0)

    def size_at(self, side: int, price) -> float:
        return self.size_float(self.size_at_raw(side, to_raw(price, self.price_precision)))

    def depth_raw(self, side: int, levels: int | None = None) -> int:
        return sum(size for _, size in self.levels(side, levels))

    def depth(self, side: int, levels: int | None = None) -> float:
        return self.size_float(self.depth_raw(side, levels))

    def _fill(self, side: int, size) -> Fraction | None:
        """Exact average raw price to fill `size` as an order of `side`; None if the book is too thin
        (or size is 0)."""
        wanted = to_raw(size, self.size_precision)
        if wanted < 0:
            raise ValueError(f"size must not be negative, got {size!r}")
        remaining = wanted
        notional = 0
        for price, level_size in self._best_first(ASK if int(side) == BUY else BID):
            if remaining == 0:
                break
            take = min(level_size, remaining)
            notional += price * take
            remaining -= take
        if wanted == 0 or remaining > 0:
            return None
        return Fraction(notional, wanted)

    def vwap(self, side: int, size) -> float:
        avg = self._fill(side, size)
        return NAN if avg is None else _as_float(avg / 10**self.price_precision)

    def slippage(self, side: int, size) -> float:
        """vwap - best ask for BUY, best bid - vwap for SELL (>= 0); nan if not enough depth."""
        avg = self._fill(side, size)
        if avg is None:
            return NAN
        diff = avg - self.best_ask_raw if int(side) == BUY else self.best_bid_raw - avg
        return _as_float(diff / 10**self.price_precision)

    def top(self, n: int) -> list[tuple[float, float, float, float]]:
        """n rows [bid_px, bid_sz, ask_px, ask_sz], NaN-padded."""
        bids, asks = self.levels(BID, n), self.levels(ASK, n)
        rows = []
        for i in range(n):
            bid = (self.price_float(bids[i][0]), self.size_float(bids[i][1])) if i < len(bids) else (NAN, NAN)
            ask = (self.price_float(asks[i][0]), self.size_float(asks[i][1])) if i < len(asks) else (NAN, NAN)
            rows.append(bid + ask)
        return rows

    # ----------------------------------------------------------------------------------- identity

    def copy(self) -> "ReferenceBook":
        return _copy.deepcopy(self)

    def params(self) -> tuple:
        return (self.price_precision, self.size_precision, self.tick, self.instrument_id, self.crossed)

    def __eq__(self, other) -> bool:
        if not isinstance(other, ReferenceBook):
            return NotImplemented
        return (self.params() == other.params()
                and self.levels(BID) == other.levels(BID)
                and self.levels(ASK) == other.levels(ASK))

    def __repr__(self) -> str:
        return (f"ReferenceBook(price_precision={self.price_precision}, size_precision={self.size_precision}, "
                f"tick={self.tick}, crossed={self.crossed!r}, bids={self.levels(BID, 3)}, "
                f"asks={self.levels(ASK, 3)}, last_update_id={self.last_update_id})")
