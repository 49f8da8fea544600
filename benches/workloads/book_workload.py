"""Synthetic L2 order-book update streams for the book benchmarks.

Two generators, both deterministic for a given seed and both independent of extrema (the same
stream is fed to extrema, NautilusTrader and the sortedcontainers reference book):

* `near_touch(n)`: a realistic stream of level updates near the touch of a ~20-levels-per-side book.
  A plain-Python book model is carried along so that every update is meaningful: a *change* sets a new
  size on a level that exists, a *delete* removes a level that exists, an *add* creates a level that
  does not exist (inside the spread or in a gap within the visible window), the book never crosses,
  and the far end is trimmed so each side stays at ~20 levels. Ranks are drawn geometrically from the
  touch, so most activity is at the best few levels, as on a real venue. The touch wanders because
  adds improve it and deletes at the touch worsen it. Updates are grouped into exchange messages
  (1..~10 updates, Binance-style ids: every update of one message carries the message's final id `u`).

* `wander(...)`: a fast-moving market for the bounded-memory figure. The mid makes a biased random walk
  of jumps from one price to another far away (e.g. 20,000.00 -> 120,000.00 at tick 0.01 =
  10 million ticks); at each jump the old levels are deleted and a fresh contiguous 20-level book is
  added around the new mid, followed by a few size changes. Produced in chunks of records so the
  stream never has to be held in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BID, ASK = 0, 1
ADD, UPDATE, DELETE = 1, 2, 3  # the action each update is, against the book it is applied to

# Record layout constants from the extrema SPEC (kept here so the generator does not import extrema).
KIND_BOOK_DELTA = 1
FLAG_ASK = 0x1
FLAG_SNAPSHOT = 0x2
FLAG_LAST = 0x4

SPEC_RECORD_DTYPE = np.dtype([
    ("kind", "<u2"), ("flags", "<u2"), ("instrument_id", "<u4"), ("ts_exchange", "<i8"),
    ("ts_local", "<i8"), ("sequence", "<i8"), ("price", "<i8"), ("quantity", "<i8"),
    ("aux0", "<i8"), ("aux1", "<i8"),
], align=True)


@dataclass
class BookWorkload:
    price_precision: int
    size_precision: int
    mid_raw: int                       # the mid the stream was generated around (raw)
    snapshot_bids: list                # [(price_raw, size_raw)], best first
    snapshot_asks: list
    side: np.ndarray                   # uint8, BID / ASK
    price: np.ndarray                  # int64 raw
    size: np.ndarray                   # int64 raw, 0 deletes
    action: np.ndarray                 # uint8, ADD / UPDATE / DELETE (true action against the book)
    last: np.ndarray                   # bool, update ends an exchange message
    update_id: np.ndarray              # int64, the message's final id (Binance `u`)
    first_id: np.ndarray               # int64, the message's first id (`U`)
    prev_id: np.ndarray                # int64, previous message's final id (`pu`)
    snapshot_id: int                   # update id of the snapshot

    def __len__(self) -> int:
        return len(self.side)

    def ops(self, start: int = 0, stop: int | None = None, shift: int = 0) -> list:
        """[(side, price_raw, size_raw)] as Python ints: what a Python caller would hold."""
        sl = slice(start, stop)
        return list(zip(self.side[sl].tolist(), (self.price[sl] + shift).tolist(), self.size[sl].tolist()))

    def snapshot_records(self, dtype=SPEC_RECORD_DTYPE, shift: int = 0, instrument_id: int = 0) -> np.ndarray:
        levels = [(BID, p, s) for p, s in self.snapshot_bids] + [(ASK, p, s) for p, s in self.snapshot_asks]
        rec = np.zeros(len(levels), dtype=dtype)
        rec["kind"] = KIND_BOOK_DELTA
        rec["instrument_id"] = instrument_id
        rec["flags"] = [FLAG_SNAPSHOT | (FLAG_ASK if side == ASK else 0) for side, _, _ in levels]
        rec["flags"][-1] |= FLAG_LAST
        rec["price"] = [p + shift for _, p, _ in levels]
        rec["quantity"] = [s for _, _, s in levels]
        rec["sequence"] = self.snapshot_id
        return rec

    def records(self, start: int = 0, stop: int | None = None, *, dtype=SPEC_RECORD_DTYPE,
                shift: int = 0, with_snapshot: bool = True, instrument_id: int = 0) -> np.ndarray:
        """BOOK_DELTA records for updates [start, stop), optionally preceded by the snapshot.

        `shift` moves every price by that many raw units (the same stream at another price level).
        """
        sl = slice(start, stop)
        n = len(self.side[sl])
        rec = np.zeros(n, dtype=dtype)
        rec["kind"] = KIND_BOOK_DELTA
        rec["instrument_id"] = instrument_id
        flags = np.where(self.side[sl] == ASK, FLAG_ASK, 0) | np.where(self.last[sl], FLAG_LAST, 0)
        if n:
            flags[-1] |= FLAG_LAST  # a slice ends a message
        rec["flags"] = flags
        rec["price"] = self.price[sl] + shift
        rec["quantity"] = self.size[sl]
        rec["sequence"] = self.update_id[sl]
        rec["aux0"] = self.first_id[sl]
        rec["aux1"] = self.prev_id[sl]
        if with_snapshot:
            rec = np.concatenate([self.snapshot_records(dtype, shift, instrument_id), rec])
        return rec


def _sizes(rng: np.random.Generator, n: int, size_precision: int) -> np.ndarray:
    # Log-normal sizes around ~0.5 units, never zero, with a heavy-ish tail.
    raw = np.exp(rng.normal(np.log(0.5 * 10**size_precision), 1.2, n))
    return np.maximum(1, raw.astype(np.int64))


def near_touch(n: int, *, seed: int = 7, mid: float = 50_000.0, price_precision: int = 2,
               size_precision: int = 3, levels: int = 20, window: int = 30) -> BookWorkload:
    """n level updates near the touch of a `levels`-per-side book; see the module docstring."""
    from sortedcontainers import SortedList  # the generator's own book model; sortedcontainers is a peer

    rng = np.random.default_rng(seed)
    mid_raw = int(round(mid * 10**price_precision))
    book_sizes = [{}, {}]
    book_prices = [SortedList(), SortedList()]

    init_sizes = _sizes(rng, 2 * levels, size_precision).tolist()
    for k in range(levels):
        for side, price in ((BID, mid_raw - 1 - k), (ASK, mid_raw + k)):
            book_sizes[side][price] = init_sizes.pop()
            book_prices[side].add(price)
    snapshot_bids = [(p, book_sizes[BID][p]) for p in reversed(book_prices[BID])]
    snapshot_asks = [(p, book_sizes[ASK][p]) for p in book_prices[ASK]]

    # Pre-drawn randomness; Python lists index faster than numpy scalars in the loop below.
    sides = rng.integers(0, 2, n).tolist()
    event = rng.random(n).tolist()
    rank = (rng.geometric(0.3, n) - 1).tolist()         # P(rank 0) = 0.3: mostly at the touch
    add_off = (rng.geometric(0.12, n) - 1).tolist()     # distance of an add from the far side's touch
    new_size = _sizes(rng, n, size_precision).tolist()
    msg_len = rng.geometric(0.3, n).tolist()            # updates per exchange message, mean ~3.3

    out_side = np.empty(n, np.uint8)
    out_price = np.empty(n, np.int64)
    out_size = np.empty(n, np.int64)
    out_action = np.empty(n, np.uint8)
    lo, hi = levels - 2, levels + 2

    for i in range(n):
        side = sides[i]
        prices = book_prices[side]
        sizes = book_sizes[side]
        count = len(prices)
        r = event[i]
        if count > hi:
            kind = DELETE
            k = count - 1                                # trim the far end
        elif count < lo or r >= 0.775:
            kind = ADD
        elif r < 0.55:
            kind = UPDATE
        else:
            kind = DELETE
        if kind != ADD:
            if count <= hi:
                k = min(rank[i], count - 1)
            price = prices[-1 - k] if side == BID else prices[k]
            if kind == UPDATE:
                size = new_size[i]
                if size == sizes[price]:
                    size += 1
                sizes[price] = size
            else:
                size = 0
                del sizes[price]
                prices.remove(price)
        else:
            # Add at a free price: `add_off` ticks behind the opposite touch, never crossing it.
            other = book_prices[1 - side]
            if side == BID:
                limit = other[0] - 1 if other else mid_raw
                price = limit - add_off[i]
                while price in sizes:
                    price -= 1
                if prices and price < prices[-1] - window:
                    price = prices[-1] - window          # stay inside the visible window
                    while price in sizes:
                        price += 1
                    if price > limit:
                        price = prices[0] - 1
            else:
                limit = other[-1] + 1 if other else mid_raw
                price = limit + add_off[i]
                while price in sizes:
                    price += 1
                if prices and price > prices[0] + window:
                    price = prices[0] + window
                    while price in sizes:
                        price -= 1
                    if price < limit:
                        price = prices[-1] + 1
            size = new_size[i]
            sizes[price] = size
            prices.add(price)
        out_side[i] = side
        out_price[i] = price
        out_size[i] = size
        out_action[i] = kind

    # Group into exchange messages with Binance-style ids (u = final id, U = first id, pu = previous u).
    last = np.zeros(n, bool)
    update_id = np.empty(n, np.int64)
    first_id = np.empty(n, np.int64)
    prev_id = np.empty(n, np.int64)
    snapshot_id = 1_000_000
    next_id = snapshot_id + 1
    prev_u = snapshot_id
    i = 0
    j = 0
    while i < n:
        m = min(msg_len[j], n - i)
        j += 1
        u = next_id + m - 1
        update_id[i:i + m] = u
        first_id[i:i + m] = next_id
        prev_id[i:i + m] = prev_u
        last[i + m - 1] = True
        prev_u = u
        next_id = u + 1
        i += m

    return BookWorkload(price_precision, size_precision, mid_raw, snapshot_bids, snapshot_asks,
                        out_side, out_price, out_size, out_action, last, update_id, first_id, prev_id,
                        snapshot_id)


def wander_path(start_raw: int, end_raw: int, *, mean_jump: int, sd_jump: int, seed: int = 11) -> np.ndarray:
    """Mids of a biased random walk of jumps from start_raw until it reaches end_raw (never below start)."""
    rng = np.random.default_rng(seed)
    steps = []
    mid = start_raw
    while mid < end_raw:
        jumps = np.rint(rng.normal(mean_jump, sd_jump, 4096)).astype(np.int64)
        path = mid + np.cumsum(jumps)
        path = np.maximum(path, start_raw)  # reflect at the start price (cumsum clipped per chunk)
        done = np.nonzero(path >= end_raw)[0]
        if len(done):
            path = path[: done[0] + 1]
        steps.append(path)
        mid = int(path[-1])
    return np.concatenate(steps)


def wander_records(path: np.ndarray, prev_mid: int, *, levels: int = 20, changes: int = 20,
                   size_precision: int = 3, first_id: int = 10_000_000, seed: int = 13,
                   dtype=SPEC_RECORD_DTYPE):
    """Records for walking the book along `path` (mids), starting from a contiguous book at prev_mid.

    One exchange message per jump, ordered as a venue sends a depth diff (bids by price descending,
    then asks ascending): the old levels that fall outside the new book are deleted, the new levels are
    added (a level in both gets a new size), so the book holds old and new levels together while the
    message is applied (the compiled book must move its dense window with live levels in it). Then
    `changes` size changes of random new levels, one message. Returns (records, next_id). Vectorised:
    the caller applies `path` in chunks to bound memory.
    """
    rng = np.random.default_rng(seed)
    steps = len(path)
    mids = np.asarray(path, np.int64)
    olds = np.concatenate([[prev_mid], mids[:-1]]).astype(np.int64)
    k = np.arange(levels, dtype=np.int64)

    def side_block(old_px, new_px, descending):
        # (steps, 2*levels) rows: old levels (deleted unless also new) then new levels, sorted by price.
        new_lo, new_hi = new_px.min(axis=1, keepdims=True), new_px.max(axis=1, keepdims=True)
        old_kept = (old_px >= new_lo) & (old_px <= new_hi)       # also in the new book: the add sets it
        px = np.concatenate([old_px, new_px], axis=1)
        qty = np.concatenate([np.zeros_like(old_px),
                              _sizes(rng, new_px.size, size_precision).reshape(new_px.shape)], axis=1)
        keep = np.concatenate([~old_kept, np.ones_like(new_px, bool)], axis=1)
        order = np.argsort(-px if descending else px, axis=1, kind="stable")
        return (np.take_along_axis(px, order, 1), np.take_along_axis(qty, order, 1),
                np.take_along_axis(keep, order, 1))

    bid_px, bid_qty, bid_keep = side_block(olds[:, None] - 1 - k, mids[:, None] - 1 - k, True)
    ask_px, ask_qty, ask_keep = side_block(olds[:, None] + k, mids[:, None] + k, False)
    pick = rng.integers(0, 2 * levels, (steps, changes))
    new_layout = np.concatenate([mids[:, None] - 1 - k, mids[:, None] + k], axis=1)
    chg_px = np.take_along_axis(new_layout, pick, axis=1)
    chg_qty = _sizes(rng, steps * changes, size_precision).reshape(steps, -1)

    w = 2 * levels
    per = 2 * w + changes
    price = np.concatenate([bid_px, ask_px, chg_px], axis=1)
    qty = np.concatenate([bid_qty, ask_qty, chg_qty], axis=1)
    keep = np.concatenate([bid_keep, ask_keep, np.ones((steps, changes), bool)], axis=1)
    flags = np.concatenate([np.zeros((steps, w), np.uint16), np.full((steps, w), FLAG_ASK, np.uint16),
                            (pick >= levels).astype(np.uint16)], axis=1)
    flags[:, 2 * w - 1] |= FLAG_LAST            # end of the jump message (its last ask row is always kept)
    flags[:, -1] |= FLAG_LAST                   # end of the changes message
    ids = first_id + 2 * np.arange(steps, dtype=np.int64)
    seq = np.concatenate([np.repeat(ids[:, None], 2 * w, 1), np.repeat(ids[:, None] + 1, changes, 1)], axis=1)

    mask = keep.ravel()
    rec = np.zeros(int(mask.sum()), dtype=dtype)
    rec["kind"] = KIND_BOOK_DELTA
    rec["flags"] = flags.ravel()[mask]
    rec["price"] = price.ravel()[mask]
    rec["quantity"] = qty.ravel()[mask]
    rec["sequence"] = seq.ravel()[mask]
    rec["aux0"] = rec["sequence"]
    rec["aux1"] = rec["sequence"] - 1
    assert per == price.shape[1]
    return rec, int(first_id + 2 * steps)


def contiguous_snapshot(mid_raw: int, *, levels: int = 20, size_precision: int = 3, update_id: int = 0,
                        seed: int = 17, dtype=SPEC_RECORD_DTYPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = np.arange(levels, dtype=np.int64)
    rec = np.zeros(2 * levels, dtype=dtype)
    rec["kind"] = KIND_BOOK_DELTA
    rec["price"] = np.concatenate([mid_raw - 1 - k, mid_raw + k])
    rec["quantity"] = _sizes(rng, 2 * levels, size_precision)
    rec["flags"] = FLAG_SNAPSHOT | np.concatenate([np.zeros(levels, np.uint16), np.ones(levels, np.uint16)])
    rec["flags"][-1] |= FLAG_LAST
    rec["sequence"] = update_id
    return rec
