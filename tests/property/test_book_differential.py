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
    """(result, error kind) of a call, so both books can be held to the same behaviour."""
    try:
        return call(), None
    except (extrema.CrossedBookError, refmod.CrossedBookError) as exc:
        return None, ("crossed", str(exc)[:0])
    except ValueError as exc:
        return None, ("invalid", str(exc)[:0])


def same_outcome(compiled_call, reference_call, what):
    got, err = outcome(compiled_call)
    want, want_err = outcome(reference_call)
    assert err == want_err, f"{what}: compiled {'raised ' + err[0] if err else 'returned'}, reference " \
                            f"{'raised ' + want_err[0] if want_err else 'returned'}"
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
        self.steps_with_levels = 0

    # -------------------------------------------------------------------------------- price helpers

    def price(self, side, offset):
        """Raw price `offset` ticks from the mid on the own side (bids below, asks above)."""
        ticks = self.mid - 1 - offset if side == BID else self.mid + offset
        return max(1, ticks) * self.tick

    def update_id(self, step):
        return 0 if step is None else max(0, self.ref.last_update_id + step)

    def corrupt(self, price, size, how):
        if how == "negative":
            return price, -max(size, 1)
        if how == "off_tick" and self.tick > 1:
            return price + 1, size
        return price, size

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

    @rule(side=sides, offset=offsets, size=st.integers(0, 10**6), form=st.sampled_from(["str", "decimal", "int"]))
    def update_user_values(self, side, offset, size, form):
        price = self.price(side, offset)
        pp, sp = self.ref.price_precision, self.ref.size_precision
        if form == "int":
            if price % 10**pp or size % 10**sp:
                form = "decimal"
            else:
                user_price, user_size = price // 10**pp, size // 10**sp
        if form == "str":
            user_price, user_size = str(user_decimal(price, pp)), str(user_decimal(size, sp))
        elif form == "decimal":
            user_price, user_size = user_decimal(price, pp), user_decimal(size, sp)
        same_outcome(lambda: self.book.update(BookSide(side), user_price, user_size),
                     lambda: self.ref.update(side, user_price, user_size),
                     f"update({side}, {user_price!r}, {user_size!r})")

    @rule(bids=snapshot_levels, asks=snapshot_levels, cross=st.sampled_from([0, 0, 0, 0, 1, 3]),
          step=st.integers(-2, 5), form=st.sampled_from(["decimal", "str", "raw_array"]),
          how=st.sampled_from([None] * 10 + ["off_tick"]))
    def snapshot(self, bids, asks, cross, step, form, how):
        pp, sp = self.ref.price_precision, self.ref.size_precision
        raw_bids = [(self.price(BID, off - cross), q) for off, q in bids]
        raw_asks = [(self.price(ASK, off), q) for off, q in asks]
        if how and raw_asks:
            raw_asks[-1] = self.corrupt(*raw_asks[-1], how)
        update_id = max(0, self.ref.last_update_id + step)

        def as_user(levels):
            if form == "raw_array":
                return np.array(levels, dtype=np.int64).reshape(len(levels), 2)
            conv = (lambda v, p: str(user_decimal(v, p))) if form == "str" else user_decimal
            return [(conv(p, pp), conv(q, sp)) for p, q in levels]

        same_outcome(lambda: self.book.apply_snapshot(as_user(raw_bids), as_user(raw_asks), update_id),
                     lambda: self.ref.apply_snapshot(raw_bids, raw_asks, update_id),
                     f"apply_snapshot({form}, {len(raw_bids)} bids, {len(raw_asks)} asks, {update_id})")

    @rule()
    def clear(self):
        self.book.clear()
        self.ref.clear()

    @rule(messages=st.lists(st.one_of(
              st.tuples(st.just("delta"), deltas, id_steps),
              st.tuples(st.just("snapshot"), snapshot_levels, snapshot_levels, st.integers(0, 4)),
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
                _, bids, asks, step = message
                seq += step
                levels = [(BID, self.price(BID, off), q) for off, q in bids] + \
                         [(ASK, self.price(ASK, off), q) for off, q in asks]
                if not levels:
                    levels = [(BID, self.price(BID, 0), 1)]
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
        twin.apply_delta(BookSide.BID, self.price(BID, 0), 0)      # independent of the original
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
            size_float = size_raw / 10**self.ref.size_precision   # a float user value, exact in repr
            assert close(self.book.vwap(Side(order_side), size_float),
                         self.ref.vwap(order_side, size_float))

    # ----------------------------------------------------------------------------------- invariant

    @invariant()
    def books_agree(self):
        probes = [self.price(BID, off) for off in (0, 1, 64, 1000)] + \
                 [self.price(ASK, off) for off in (-1, 0, 63, 5000)]
        compare_books(self.book, self.ref, probes)


SETTINGS = settings(max_examples=40, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


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
