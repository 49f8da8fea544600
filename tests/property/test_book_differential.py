"""Differential tests: the compiled extrema.OrderBook against the pure-Python ReferenceBook.

A hypothesis state machine drives both books with the same operations - delta messages (inserts,
updates, deletes of absent levels, stale / equal / missing update ids, invalid sizes and prices),
snapshots (three input forms), clear, record batches through apply_records (snapshot messages, delta
messages, BOOK_RESET, records of other instruments and kinds, invalid records, strict and lenient),
copy and pickle - and after every step compares every read. The ladder is the smallest allowed (64
ticks) while the mid price random-walks with jumps of thousands of ticks, so the compiled book's
dense-ladder / overflow re-centring runs all the time. Raw ints are compared exactly, derived floats
with math.isclose(rel_tol=1e-12) against the reference's correctly rounded exact values.
"""

import copy
import inspect
import math
import pickle
import random
from decimal import Decimal
from importlib.machinery import EXTENSION_SUFFIXES

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import extrema
from extrema import RECORD_DTYPE, BookSide, OrderBook, RecordFlag, RecordKind, Side
from models import reference_book as refmod
from models.reference_book import ASK, BID, BUY, SELL, ReferenceBook

REL = 1e-12
LADDER = 64
INSTRUMENT = 7


def test_the_compiled_book_is_what_runs():
    """The differential tests below are worth something only if they drive the compiled module."""
    assert OrderBook.__module__ == "extrema._core.book"
    module_file = extrema._core.book.__file__
    assert module_file.endswith(".so") and module_file.endswith(tuple(EXTENSION_SUFFIXES)), module_file
    assert not inspect.isfunction(OrderBook.apply_delta)           # a Cython method, not Python code
    with pytest.raises(AttributeError):
        OrderBook(2, 2).anything = 1                                # an extension type has no __dict__


# ------------------------------------------------------------------------------------------ helpers

def outcome(call):
    """(result, None) or (None, kind of error), so both books can be held to the same behaviour."""
    try:
        return call(), None
    except (extrema.CrossedBookError, refmod.CrossedBookError):  # extrema's is also a ValueError
        return None, "crossed"
    except ValueError:
        return None, "invalid"


def same_outcome(compiled_call, reference_call, what):
    """Run both calls; they must return the same value or raise the same kind of error (returned)."""
    got, err = outcome(compiled_call)
    want, want_err = outcome(reference_call)
    assert err == want_err, f"{what}: compiled {err or 'returned'}, reference {want_err or 'returned'}"
    assert got == want, f"{what}: compiled returned {got!r}, reference {want!r}"
    return err


def close(got, want, abs_tol=0.0):
    if math.isnan(want):
        return math.isnan(got)
    return math.isclose(got, want, rel_tol=REL, abs_tol=abs_tol)


def user_decimal(raw, precision):
    return Decimal(raw).scaleb(-precision)


def compare_books(book: OrderBook, ref: ReferenceBook, probe_prices=()):
    """Every read of the compiled book against the reference."""
    pp, sp = ref.price_precision, ref.size_precision
    for side in (BID, ASK):
        want = ref.levels(side)
        got = book.levels(BookSide(side), raw=True)
        assert got.dtype == np.int64 and got.shape == (len(want), 2)
        assert [(int(p), int(q)) for p, q in got] == want, f"side {side} levels differ"
        got_top3 = book.levels(BookSide(side), 3, raw=True)
        assert [(int(p), int(q)) for p, q in got_top3] == want[:3]
        got_f = book.levels(BookSide(side))
        assert got_f.dtype == np.float64 and got_f.shape == (len(want), 2)
        for (fp, fq), (p, q) in zip(got_f, want):
            assert close(fp, ref.price_float(p)) and close(fq, ref.size_float(q))
        assert close(book.depth(BookSide(side)), ref.depth(side))
        assert close(book.depth(BookSide(side), 3), ref.depth(side, 3))
        for price in [p for p, _ in want] + list(probe_prices):
            assert book.size_at_raw(BookSide(side), price) == ref.size_at_raw(side, price), (side, price)
        if want:
            price = want[-1][0]
            assert close(book.size_at(BookSide(side), user_decimal(price, pp)), ref.size_float(want[-1][1]))

    assert (book.bid_count, book.ask_count) == (ref.bid_count, ref.ask_count)
    assert (book.best_bid_raw, book.best_ask_raw) == (ref.best_bid_raw, ref.best_ask_raw)
    assert book.last_update_id == ref.last_update_id
    assert book.is_crossed == ref.is_crossed
    stats = book.stats
    assert {k: stats[k] for k in ("stale", "rejected", "crossed")} == ref.stats
    assert len(book) == ref.bid_count + ref.ask_count

    for got, want in zip(book.bbo(), ref.bbo()):
        assert close(got, want)
    assert close(book.best_bid, ref.best_bid) and close(book.best_ask, ref.best_ask)
    assert close(book.best_bid_size, ref.best_bid_size) and close(book.best_ask_size, ref.best_ask_size)
    assert close(book.spread, ref.spread)
    assert close(book.mid, ref.mid)
    assert close(book.microprice, ref.microprice)
    for n in (1, 3, 1000):
        # bounded in [-1, 1]: an absolute tolerance is the meaningful one near 0
        assert close(book.imbalance(n), ref.imbalance(n), abs_tol=REL), n

    top = book.top(4)
    assert top.shape == (4, 4)
    for got_row, want_row in zip(top, ref.top(4)):
        assert all(close(g, w) for g, w in zip(got_row, want_row))

    table = book.to_numpy()
    want_rows = [(BID, p, q) for p, q in ref.levels(BID)] + [(ASK, p, q) for p, q in ref.levels(ASK)]
    assert [(int(r["side"]), int(r["price_raw"]), int(r["size_raw"])) for r in table] == want_rows
    for r in table:
        assert close(float(r["price"]), ref.price_float(int(r["price_raw"])))
        assert close(float(r["size"]), ref.size_float(int(r["size_raw"])))

    for order_side, book_side in ((BUY, ASK), (SELL, BID)):
        for size_raw in fill_sizes(ref.levels(book_side)):
            check_fill(book, ref, order_side, size_raw)


def fill_sizes(levels):
    """Raw sizes at and around the cumulative depth of a few levels, and one more than the book."""
    sizes, total = [], 0
    for i, (_, q) in enumerate(levels):
        total += q
        if i < 3 or i == len(levels) - 1:
            sizes += [total - 1, total, total + 1]
    sizes.append(total + 1)
    return sorted({s for s in sizes if s > 0})


def check_fill(book, ref, order_side, size_raw):
    sp = ref.size_precision
    size = user_decimal(size_raw, sp)
    side = Side(order_side)
    want_vwap = ref.vwap(order_side, size)
    got_vwap = book.vwap(side, size)
    assert close(got_vwap, want_vwap), (side, size, got_vwap, want_vwap)
    touch = ref.best_ask if order_side == BUY else ref.best_bid
    want_slip = ref.slippage(order_side, size)
    got_slip = book.slippage(side, size)
    # slippage is a difference of two prices: its attainable accuracy is relative to the price
    assert close(got_slip, want_slip, abs_tol=REL * abs(touch) if not math.isnan(touch) else 0.0), \
        (side, size, got_slip, want_slip)
    if not math.isnan(want_slip):
        assert got_slip >= 0.0


# ------------------------------------------------------------------------------------- strategies

sides = st.sampled_from([BID, ASK])
near = st.integers(-3, 40)                       # ticks away from the mid, towards the own side; < 0 crosses
far = st.integers(-40, 6000)
offsets = st.one_of(near, near, near, far)
sizes = st.one_of(st.just(0), st.integers(1, 1000), st.integers(1, 10**12))
corruption = st.sampled_from([None] * 12 + ["negative", "off_tick"])
deltas = st.lists(st.tuples(sides, offsets, sizes, corruption), min_size=1, max_size=5)
id_steps = st.one_of(st.integers(0, 3), st.integers(-3, -1), st.just(None))  # None: no id (0)
snapshot_levels = st.lists(st.tuples(st.integers(0, 50) | far, st.integers(0, 10**9)), max_size=25)


class BookMachine(RuleBasedStateMachine):
    """One compiled book and one reference book, always fed the same thing."""

    policy = "flag"

    @initialize(
        precisions=st.sampled_from([(0, 0), (2, 3), (4, 0), (5, 8), (8, 8), (1, 6)]),
        tick=st.sampled_from([1, 1, 5, 25]),
        mid=st.one_of(st.integers(100, 10_000), st.integers(10_000, 10**9)),
    )
    def start(self, precisions, tick, mid):
        pp, sp = precisions
        self.tick = tick
        self.mid = mid                                 # in ticks
        self.book = OrderBook(pp, sp, tick=tick, instrument_id=INSTRUMENT, ladder_ticks=LADDER,
                              crossed=self.policy)
        self.ref = ReferenceBook(pp, sp, tick=tick, instrument_id=INSTRUMENT, crossed=self.policy)

    # -------------------------------------------------------------------------------- price helpers

    def price(self, side, offset):
        """Raw price `offset` ticks from the mid on the own side (bids below, asks above)."""
        ticks = self.mid - 1 - offset if side == BID else self.mid + offset
        return max(1, ticks) * self.tick

    def update_id(self, step):
        return 0 if step is None else max(0, self.ref.last_update_id + step)

    def corrupt(self, price, size, how):
        """An invalid raw (price, size) pair, as `how` says; None or an impossible corruption: unchanged."""
        if how == "negative":
            return price, -max(size, 1)
        if how == "off_tick" and self.tick > 1:
            return price + 1, size
        return price, size

    def user_values(self, levels, form, how=None):
        """Raw (price, size) pairs as the user values of `form`; how == "too_precise" adds a digit
        beyond the precision to the last price, which no raw value can express."""
        pp, sp = self.ref.price_precision, self.ref.size_precision
        if form == "str":
            out = [(str(user_decimal(p, pp)), str(user_decimal(q, sp))) for p, q in levels]
        else:
            out = [(user_decimal(p, pp), user_decimal(q, sp)) for p, q in levels]
        if how == "too_precise" and out:
            price, size = out[-1]
            out[-1] = (Decimal(price) + Decimal(1).scaleb(-pp - 1), size)
            if form == "str":
                out[-1] = (str(out[-1][0]), size)
        return out

    # ---------------------------------------------------------------------------------------- rules

    @rule(jump=st.one_of(st.integers(-30, 30), st.integers(-20_000, 20_000), st.integers(-10**6, 10**6)))
    def move_mid(self, jump):
        self.mid = max(1, self.mid + jump)

    @rule(changes=deltas, step=id_steps)
    def delta_message(self, changes, step):
        update_id = self.update_id(step)
        for i, (side, offset, size, how) in enumerate(changes):
            price, size = self.corrupt(self.price(side, offset), size, how)
            last = i == len(changes) - 1
            err = same_outcome(
                lambda: self.book.apply_delta(BookSide(side), price, size, update_id, last),
                lambda: self.ref.apply_delta(side, price, size, update_id, last),
                f"apply_delta({side}, {price}, {size}, {update_id}, last={last})")
            if err:
                break  # the caller would stop feeding this message too

    @rule(side=sides, offset=offsets, size=st.integers(0, 10**6), form=st.sampled_from(["str", "decimal", "int"]),
          how=st.sampled_from([None] * 6 + ["negative", "off_tick", "too_precise"]))
    def update_user_values(self, side, offset, size, form, how):
        price, size = self.corrupt(self.price(side, offset), size, how)
        pp, sp = self.ref.price_precision, self.ref.size_precision
        if form == "int" and not (price % 10**pp or size % 10**sp or how):
            user_price, user_size = price // 10**pp, size // 10**sp      # whole units
        else:
            [(user_price, user_size)] = self.user_values([(price, size)], "str" if form == "str" else "decimal", how)
        same_outcome(lambda: self.book.update(BookSide(side), user_price, user_size),
                     lambda: self.ref.update(side, user_price, user_size),
                     f"update({side}, {user_price!r}, {user_size!r})")

    @rule(bids=snapshot_levels, asks=snapshot_levels, cross=st.sampled_from([0, 0, 0, 0, 1, 3]),
          step=st.integers(-2, 5), form=st.sampled_from(["decimal", "str", "raw_array"]),
          how=st.sampled_from([None] * 10 + ["off_tick", "negative", "too_precise"]),
          bad_side=sides)
    def snapshot(self, bids, asks, cross, step, form, how, bad_side):
        raw = {BID: [(self.price(BID, off - cross), q) for off, q in bids],
               ASK: [(self.price(ASK, off), q) for off, q in asks]}
        if how in ("off_tick", "negative") and raw[bad_side]:
            raw[bad_side][-1] = self.corrupt(*raw[bad_side][-1], how)
        update_id = max(0, self.ref.last_update_id + step)
        what = f"apply_snapshot({form}, {len(raw[BID])} bids, {len(raw[ASK])} asks, {update_id}, {how})"
        if form == "raw_array":
            arrays = [np.array(raw[side], dtype=np.int64).reshape(len(raw[side]), 2) for side in (BID, ASK)]
            same_outcome(lambda: self.book.apply_snapshot(*arrays, update_id),
                         lambda: self.ref.apply_snapshot(raw[BID], raw[ASK], update_id), what)
        else:
            values = {side: self.user_values(raw[side], form, how if side == bad_side else None)
                      for side in (BID, ASK)}
            same_outcome(lambda: self.book.apply_snapshot(values[BID], values[ASK], update_id),
                         lambda: self.ref.apply_snapshot_values(values[BID], values[ASK], update_id), what)

    @rule(seed=st.integers(0, 2**32 - 1), n=st.integers(50, 400), spread=st.sampled_from([1, 64, 100_000]))
    def big_snapshot(self, seed, n, spread):
        """Hundreds of levels, dense at the touch and scattered far beyond the ladder."""
        rng = random.Random(seed)
        levels = {side: [(self.price(side, rng.choice([rng.randint(0, 70), rng.randint(0, spread)])),
                          rng.randint(1, 10**9)) for _ in range(n)] for side in (BID, ASK)}
        update_id = self.ref.last_update_id + 1
        arrays = [np.array(levels[side], dtype=np.int64) for side in (BID, ASK)]
        same_outcome(lambda: self.book.apply_snapshot(*arrays, update_id),
                     lambda: self.ref.apply_snapshot(levels[BID], levels[ASK], update_id), f"big snapshot {n}")

    @rule()
    def clear(self):
        self.book.clear()
        self.ref.clear()

    @rule(messages=st.lists(st.one_of(
              st.tuples(st.just("delta"), deltas, id_steps),
              st.tuples(st.just("snapshot"), snapshot_levels, snapshot_levels, st.integers(-2, 4), corruption),
              st.tuples(st.just("reset")),
              st.tuples(st.just("foreign"), deltas, id_steps),
              st.tuples(st.just("trade"), sides, offsets)),
              min_size=1, max_size=6),
          strict=st.booleans())
    def records(self, messages, strict):
        rows = []
        seq = self.ref.last_update_id

        def add(kind, flags, price, qty, sequence, instrument=INSTRUMENT, first_id=0, prev_id=0):
            rows.append((kind, flags, instrument, 0, 0, sequence, price, qty, first_id, prev_id))

        for message in messages:
            kind = message[0]
            if kind in ("delta", "foreign"):
                _, changes, step = message
                if step is None:
                    sequence = 0
                else:
                    sequence = max(0, seq + step)
                    seq = max(seq, sequence)
                instrument = INSTRUMENT if kind == "delta" else INSTRUMENT + 1
                for i, (side, offset, size, how) in enumerate(changes):
                    price, qty = self.corrupt(self.price(side, offset), size, how)
                    flags = (RecordFlag.ASK if side == ASK else 0) | (RecordFlag.LAST if i == len(changes) - 1 else 0)
                    add(RecordKind.BOOK_DELTA, flags, price, qty, sequence, instrument, sequence, seq)
            elif kind == "snapshot":
                _, bids, asks, step, how = message
                seq = max(0, seq + step)
                levels = [(BID, self.price(BID, off), q) for off, q in bids] + \
                         [(ASK, self.price(ASK, off), q) for off, q in asks]
                if not levels:
                    levels = [(BID, self.price(BID, 0), 1)]
                if how:
                    side, price, qty = levels[len(levels) // 2]
                    levels[len(levels) // 2] = (side, *self.corrupt(price, qty, how))
                for i, (side, price, qty) in enumerate(levels):
                    flags = RecordFlag.SNAPSHOT | (RecordFlag.ASK if side == ASK else 0) | \
                        (RecordFlag.LAST if i == len(levels) - 1 else 0)
                    add(RecordKind.BOOK_DELTA, flags, price, qty, seq)
            elif kind == "reset":
                add(RecordKind.BOOK_RESET, 0, 0, 0, 0)
            else:
                _, side, offset = message
                add(RecordKind.TRADE, RecordFlag.LAST, self.price(side, offset), 5, seq + 1)
        batch = np.array(rows, dtype=RECORD_DTYPE)
        same_outcome(lambda: self.book.apply_records(batch, strict=strict),
                     lambda: self.ref.apply_records(batch, strict=strict),
                     f"apply_records({len(rows)} records, strict={strict})")

    @rule(how=st.sampled_from(["method", "copy", "deepcopy"]))
    def copy_book(self, how):
        twin = {"method": self.book.copy, "copy": lambda: copy.copy(self.book),
                "deepcopy": lambda: copy.deepcopy(self.book)}[how]()
        assert twin == self.book and twin is not self.book
        before = self.book.levels(BookSide.BID, raw=True).copy()
        for price, _ in self.ref.levels(BID, 2):                    # independent of the original
            twin.apply_delta(BookSide.BID, price, 0, 0, False)      # (no message end: no crossed check)
        assert np.array_equal(self.book.levels(BookSide.BID, raw=True), before)
        twin = self.book.copy()
        compare_books(twin, self.ref)
        self.book = twin                                            # carry on with the copy

    @rule()
    def pickle_round_trip(self):
        restored = pickle.loads(pickle.dumps(self.book))
        assert restored == self.book
        assert restored.crossed_policy == self.policy
        self.book = restored

    @precondition(lambda self: self.ref.bid_count + self.ref.ask_count > 0)
    @rule(data=st.data())
    def random_fills(self, data):
        for order_side in (BUY, SELL):
            total = self.ref.depth_raw(ASK if order_side == BUY else BID)
            size_raw = data.draw(st.integers(1, max(1, total + 10)))
            check_fill(self.book, self.ref, order_side, size_raw)
            if size_raw < 10**15:                       # <= 15 digits: the float's repr is exactly the size
                size_float = size_raw / 10**self.ref.size_precision
                assert close(self.book.vwap(Side(order_side), size_float),
                             self.ref.vwap(order_side, size_float))

    # ----------------------------------------------------------------------------------- invariant

    @invariant()
    def books_agree(self):
        probes = [self.price(BID, off) for off in (0, 1, 64, 1000)] + \
                 [self.price(ASK, off) for off in (-1, 0, 63, 5000)]
        compare_books(self.book, self.ref, probes)


SETTINGS = settings(max_examples=60, stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class FlagMachine(BookMachine):
    policy = "flag"


class RaiseMachine(BookMachine):
    policy = "raise"


class PruneMachine(BookMachine):
    policy = "prune"


TestFlagPolicy = FlagMachine.TestCase
TestFlagPolicy.settings = SETTINGS
TestRaisePolicy = RaiseMachine.TestCase
TestRaisePolicy.settings = SETTINGS
TestPrunePolicy = PruneMachine.TestCase
TestPrunePolicy.settings = SETTINGS


# --------------------------------------------------------------------------- focused, deterministic

def both(pp=2, sp=3, **options):
    ladder = options.pop("ladder_ticks", LADDER)
    return OrderBook(pp, sp, ladder_ticks=ladder, **options), ReferenceBook(pp, sp, **options)


def test_random_walk_far_from_the_ladder_matches_reference():
    """Thousands of deltas while the touch wanders over millions of ticks with a 64-tick ladder:
    the compiled book re-centres its window many times and must never lose or misplace a level."""
    rng = random.Random(20240607)
    book, ref = both(4, 2, tick=5)
    mid = 2_000_000
    for step in range(4000):
        mid = max(100, mid + rng.choice([rng.randint(-3, 3), rng.randint(-3, 3), rng.randint(-5000, 5000)]))
        side = rng.choice([BID, ASK])
        dist = rng.choice([rng.randint(0, 20), rng.randint(0, 20), rng.randint(0, 100_000)])
        ticks = mid - 1 - dist if side == BID else mid + dist
        price = max(1, ticks) * 5
        size = rng.choice([0, 0, rng.randint(1, 10**6)])
        same_outcome(lambda: book.apply_delta(BookSide(side), price, size, step),
                     lambda: ref.apply_delta(side, price, size, step), f"step {step}")
        if step % 250 == 0:
            compare_books(book, ref)
    compare_books(book, ref)
    assert book.stats["recenters"] >= 20 and book.bid_count + book.ask_count > 100


@pytest.mark.parametrize("policy", ["flag", "raise", "prune"])
def test_crossed_policies(policy):
    book, ref = both(crossed=policy)
    for args in [(BID, 10000, 1500, 1), (BID, 9990, 100, 1), (ASK, 10010, 500, 1), (ASK, 10030, 700, 1)]:
        book.apply_delta(BookSide(args[0]), *args[1:])
        ref.apply_delta(*args)
    scenario = [
        (ASK, 10000, 300, 2, True),     # locks the book at 100.00
        (BID, 10020, 100, 3, False),    # crosses, mid-message: no check yet
        (BID, 10030, 100, 3, True),     # through both asks
        (ASK, 9995, 100, 4, True),      # through the bids
        (BID, 10040, 0, 5, True),       # a delete
    ]
    for side, price, size, uid, last in scenario:
        err = same_outcome(lambda: book.apply_delta(BookSide(side), price, size, uid, last),
                           lambda: ref.apply_delta(side, price, size, uid, last), (side, price, size))
        compare_books(book, ref)
        if policy == "raise" and last and err is None:
            assert not book.is_crossed
    assert book.stats["crossed"] >= 2
    if policy == "prune":
        assert not book.is_crossed
    elif policy == "flag":
        assert book.is_crossed


@pytest.mark.parametrize("policy", ["flag", "raise", "prune"])
def test_crossed_snapshot(policy):
    book, ref = both(crossed=policy)
    bids, asks = [(10010, 1), (10000, 2)], [(10005, 3), (10020, 4)]
    same_outcome(lambda: book.apply_snapshot([(user_decimal(p, 2), user_decimal(q, 3)) for p, q in bids],
                                             [(user_decimal(p, 2), user_decimal(q, 3)) for p, q in asks], 9),
                 lambda: ref.apply_snapshot(bids, asks, 9), "crossed snapshot")
    compare_books(book, ref)


def test_invalid_deltas_raise_and_change_nothing():
    book, ref = both(tick=5)
    book.apply_delta(BookSide.BID, 10000, 1, 7)
    ref.apply_delta(BID, 10000, 1, 7)
    for side, price, size, uid in [(BID, 10000, -1, 8), (ASK, 10001, 1, 8), (ASK, 10005, -5, 0)]:
        err = same_outcome(lambda: book.apply_delta(BookSide(side), price, size, uid),
                           lambda: ref.apply_delta(side, price, size, uid), (side, price, size))
        assert err == "invalid"
        compare_books(book, ref)
    for price, size in [("100.001", "1"), ("100.00", "-1"), ("100.01", "1"), ("nan", "1")]:
        err = same_outcome(lambda: book.update(BookSide.ASK, price, size),
                           lambda: ref.update(ASK, price, size), (price, size))
        assert err == "invalid"
        compare_books(book, ref)
    assert book.last_update_id == 7


def _records(*rows):
    return np.array([(kind, flags, INSTRUMENT, 0, 0, seq, price, qty, 0, 0)
                     for kind, flags, seq, price, qty in rows], dtype=RECORD_DTYPE)


@pytest.mark.parametrize("strict", [True, False])
def test_invalid_records_strict_and_lenient(strict):
    book, ref = both(0, 0, instrument_id=INSTRUMENT)
    batch = _records(
        (RecordKind.BOOK_DELTA, RecordFlag.LAST, 5, 100, 1),
        (RecordKind.BOOK_DELTA, RecordFlag.ASK | RecordFlag.LAST, 6, 110, -3),  # negative size
        (RecordKind.BOOK_DELTA, RecordFlag.ASK | RecordFlag.LAST, 6, 120, 2),
    )
    err = same_outcome(lambda: book.apply_records(batch, strict=strict),
                       lambda: ref.apply_records(batch, strict=strict), f"strict={strict}")
    assert err == ("invalid" if strict else None)
    if strict:
        fresh, _ = both(0, 0, instrument_id=INSTRUMENT)
        with pytest.raises(ValueError, match=r"record 1\b"):        # the SPEC: the error names the index
            fresh.apply_records(batch)
    compare_books(book, ref)
    assert book.stats["rejected"] == (0 if strict else 1)


@pytest.mark.parametrize("strict", [True, False])
def test_a_rejected_record_changes_nothing(strict):
    """An invalid record is skipped (or stops the batch): it must not move last_update_id, which would
    make the venue's next valid message look stale."""
    book, ref = both(0, 0, instrument_id=INSTRUMENT)
    batch = _records((RecordKind.BOOK_DELTA, RecordFlag.LAST, 5, 100, -1))
    same_outcome(lambda: book.apply_records(batch, strict=strict),
                 lambda: ref.apply_records(batch, strict=strict), f"strict={strict}")
    assert book.last_update_id == 0
    compare_books(book, ref)


def test_an_invalid_snapshot_record_does_not_clear_the_book():
    book, ref = both(0, 0, instrument_id=INSTRUMENT)
    for b in (book, ref):
        b.apply_delta(BID, 100, 1, 5)
        b.apply_delta(ASK, 110, 1, 5)
    batch = _records((RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT, 9, 101, -1),
                     (RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT | RecordFlag.ASK | RecordFlag.LAST, 9, 111, 1))
    same_outcome(lambda: book.apply_records(batch), lambda: ref.apply_records(batch), "strict")
    compare_books(book, ref)


@pytest.mark.parametrize("bad", [("1.05", "-1"), ("1.051", "1"), ("1.07", "1")])
def test_an_invalid_snapshot_changes_nothing(bad):
    """Whatever the invalid value (negative size, too many decimals, off tick), the snapshot is all or
    nothing: never the levels read before the bad one."""
    book, ref = both(2, 2, tick=5)
    bids, asks = [("1.10", "3"), bad], [("2.00", "1")]
    for b in (book, ref):
        b.apply_delta(BID, 100, 100, 5)
    err = same_outcome(lambda: book.apply_snapshot(bids, asks, 9),
                       lambda: ref.apply_snapshot_values(bids, asks, 9), f"snapshot with {bad}")
    assert err == "invalid"
    compare_books(book, ref)
    assert book.levels(BookSide.BID, raw=True).tolist() == [[100, 100]] and book.last_update_id == 5


def test_slippage_is_never_negative():
    """A fill inside the touch level has no slippage; float notional must not make it negative."""
    book, ref = both(0, 0)
    book.apply_delta(BookSide.BID, 21391, 494558969381)
    ref.apply_delta(BID, 21391, 494558969381)
    assert ref.slippage(SELL, 494558969381) == 0.0
    assert book.slippage(Side.SELL, 494558969381) >= 0.0
    assert close(book.vwap(Side.SELL, 494558969381), 21391.0)


def test_a_snapshot_that_opens_clears_the_crossed_flag_too():
    """The first SNAPSHOT record clears the book, as clear() and BOOK_RESET do - including is_crossed:
    if that snapshot's LAST record is then rejected, the book must not report a one-sided book crossed."""
    book, ref = both(0, 0)
    for b in (book, ref):
        b.apply_delta(BID, 100, 1, 1)
        b.apply_delta(ASK, 100, 1, 1)               # locked: crossed under "flag"
    batch = np.array([(RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT, 0, 0, 0, 5, 90, 1, 0, 0),
                      (RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT | RecordFlag.LAST | RecordFlag.ASK,
                       0, 0, 0, 5, 95, -1, 0, 0)], dtype=RECORD_DTYPE)
    same_outcome(lambda: book.apply_records(batch, strict=False),
                 lambda: ref.apply_records(batch, strict=False), "snapshot with a rejected LAST")
    compare_books(book, ref)


def test_a_rejected_last_record_still_ends_its_snapshot():
    """strict=False: the rejected LAST of one snapshot must not let the next snapshot merge into it."""
    book, ref = both(0, 0, instrument_id=INSTRUMENT)
    first = _records((RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT, 5, 90, 1),
                     (RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT | RecordFlag.LAST | RecordFlag.ASK, 5, 95, -1))
    second = _records((RecordKind.BOOK_DELTA, RecordFlag.SNAPSHOT | RecordFlag.LAST | RecordFlag.ASK, 6, 200, 1))
    for batch in (first, second):
        same_outcome(lambda: book.apply_records(batch, strict=False),
                     lambda: ref.apply_records(batch, strict=False), "lenient")
        compare_books(book, ref)
    assert book.bid_count == 0 and book.best_ask_raw == 200 and book.last_update_id == 6
