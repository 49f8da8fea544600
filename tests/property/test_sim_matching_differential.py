"""The simulator's matching engine against the naive reference (tests/models/matching_reference.py).

Hypothesis drives both with the same sequence of background flow (limit adds, newest-first cancels,
market orders) and user orders (LIMIT GTC / IOC / FOK, MARKET, cancels) on one spot symbol, and after
every step compares the book's levels, every user order's status and fill, and the balances.
"""

from hypothesis import given, settings, strategies as st

from extrema.sim.matching import BUY, SELL, MatchingEngine, Reject, SymbolSpec
from models.matching_reference import ReferenceMatching

PRICES = st.integers(min_value=95, max_value=105)  # raw, tick 1 at 2 decimals
QTYS = st.integers(min_value=1, max_value=30)  # raw, step 1 at 3 decimals

ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from([BUY, SELL]), PRICES, QTYS),
    st.tuples(st.just("cancel_bg"), st.sampled_from([BUY, SELL]), PRICES, QTYS),
    st.tuples(st.just("flow"), st.sampled_from([BUY, SELL]), QTYS),
    st.tuples(st.just("limit"), st.sampled_from([BUY, SELL]), PRICES, QTYS, st.sampled_from(["GTC", "IOC", "FOK"])),
    st.tuples(st.just("market"), st.sampled_from([BUY, SELL]), QTYS),
    st.tuples(st.just("cancel"), st.integers(min_value=1, max_value=12)),
), min_size=1, max_size=60)


def _engine():
    spec = SymbolSpec("ABCUSDT", "ABC", "USDT", tick="0.01", step="0.001", min_notional="0", min_qty="0.001")
    eng = MatchingEngine("spot", [spec], balances={"USDT": "50", "ABC": "0.2"}, fees=(1000, 2500))
    ref = ReferenceMatching(2, 3, "ABC", "USDT", {a: list(v) for a, v in eng.balances.items()}, 1000, 2500)
    return eng, ref


@settings(max_examples=150, deadline=None)
@given(ops)
def test_engine_matches_reference(seq):
    eng, ref = _engine()
    sym = "ABCUSDT"
    for op in seq:
        kind = op[0]
        if kind == "add":
            eng.add_liquidity(sym, op[1], op[2], op[3])
            ref.add_liquidity(op[1], op[2], op[3])
        elif kind == "cancel_bg":
            eng.cancel_liquidity(sym, op[1], op[2], op[3])
            ref.cancel_liquidity(op[1], op[2], op[3])
        elif kind == "flow":
            eng.market_flow(sym, op[1], op[2])
            ref.market_flow(op[1], op[2])
        elif kind in ("limit", "market"):
            try:
                if kind == "limit":
                    order, _ = eng.submit(sym, op[1], "LIMIT", qty=op[3], price=op[2], tif=op[4])
                else:
                    order, _ = eng.submit(sym, op[1], "MARKET", qty=op[2])
                got = order.order_id
            except Reject as r:
                got = r.code
            want = ref.submit(op[1], "LIMIT", op[3], op[2], op[4]) if kind == "limit" else \
                ref.submit(op[1], "MARKET", op[2])
            assert got == want, op
        else:
            try:
                got = eng.cancel(sym, op[1]).order_id
            except Reject as r:
                got = r.code
            assert got == ref.cancel(op[1]), op
        book = eng.books[sym]
        for side in (BUY, SELL):
            assert dict(book.totals[side]) == ref.levels(side)
            assert book.prices[side] == sorted(ref.levels(side))
        for oid, r in ref.orders.items():
            o = eng.orders[oid]
            assert (o.status, o.filled) == (r.status, r.filled), oid
        assert eng.balances == ref.balances
        # conservation: what is locked is exactly what open orders still hold
        locked = {a: 0 for a in eng.balances}
        for o in eng.open_orders(sym):
            locked["USDT" if o.side == BUY else "ABC"] += o.locked
        assert {a: v[1] for a, v in eng.balances.items()} == locked
