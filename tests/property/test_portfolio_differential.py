"""Differential test: the compiled Portfolio against tests/models/pnl_reference.py.

Hypothesis draws fill sequences over three instruments (spot, a linear perpetual, an inverse-sized
perpetual with a contract multiplier), four owners (including EXTERNAL), fees in the quote, base and a
third asset, marks; for each accounting method both portfolios must hold the same positions (size, cost
basis, realised P&L, fees, lots), the same balances, the same unrealised P&L and the same equity, bit
for bit (the compiled equity is the reference's float expression evaluated in the same order).
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extrema import InstrumentRegistry, Market
from extrema._core.portfolio import ALL, EXTERNAL, AssetRegistry, Portfolio
from models.pnl_reference import ReferencePortfolio, Spec

OWNERS = (0, 1, 63, EXTERNAL)


def setup(method):
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.001")
    reg.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.01")
    reg.register("BTC_USD_PERP", Market.OKX, "0.1", "1", multiplier="0.001")
    assets = AssetRegistry()
    bnb = assets.register("BNB", 8)
    compiled = Portfolio(reg, method, assets)
    compiled.set_rate("BNB", 0.25)
    specs = {1: Spec(2, 3, cash="spot", market=int(Market.BINANCE_SPOT), base="BTC", quote="USDT"),
             2: Spec(1, 2, cash="margin", market=int(Market.BINANCE_USDM), base="ETH", quote="USDT"),
             3: Spec(1, 0, multiplier=1, mult_precision=3, cash="margin", market=int(Market.OKX), base="BTC",
                     quote="USD")}
    ref = ReferencePortfolio(specs, method, asset_precision={"BNB": 8})
    ref.rates["BNB"] = 0.25
    return compiled, ref, bnb


fills = st.lists(st.tuples(
    st.sampled_from(OWNERS), st.sampled_from((1, 2, 3)), st.integers(0, 1),
    st.integers(9_000, 11_000), st.integers(1, 5_000),
    st.sampled_from((0, 0, 7, -3, 1234)), st.sampled_from(("quote", "base", "BNB")),
    st.one_of(st.none(), st.integers(9_000, 11_000))), min_size=1, max_size=60)


@pytest.mark.parametrize("method", ["fifo", "lifo", "average"])
@settings(max_examples=150, deadline=None)
@given(seq=fills)
def test_portfolio_matches_the_reference(method, seq):
    compiled, ref, bnb = setup(method)
    base_ids = {1: compiled.assets.get("BTC"), 2: compiled.assets.get("ETH"), 3: compiled.assets.get("BTC")}
    for owner, iid, side, price, qty, fee, fee_kind, mark in seq:
        if fee_kind == "quote":
            compiled.fill(owner, iid, side, price, qty, fee_raw=fee)
            ref.fill(owner, iid, side, price, qty, fee=fee)
        elif fee_kind == "base":
            if base_ids[iid] is None:
                base_ids[iid] = compiled.assets.register(ref.specs[iid].base)
            ref.asset_precision[ref.specs[iid].base] = compiled.assets.precision(base_ids[iid])
            compiled.fill(owner, iid, side, price, qty, fee_raw=fee, fee_asset=base_ids[iid])
            ref.fill(owner, iid, side, price, qty, fee=fee, fee_asset=ref.specs[iid].base)
        else:
            compiled.fill(owner, iid, side, price, qty, fee_raw=fee, fee_asset=bnb)
            ref.fill(owner, iid, side, price, qty, fee=fee, fee_asset="BNB")
        if mark is not None:
            compiled.set_mark(iid, mark)
            ref.marks[iid] = 2 * mark
    for (owner, iid), p in ref.positions.items():
        c = compiled.position(owner, iid)
        got = (c["quantity_raw"], c["cost_raw"], c["realized_raw"], c["fees_raw"], c["fills"],
               c["bought"].scaleb(ref.specs[iid].size_precision), c["sold"].scaleb(ref.specs[iid].size_precision),
               [list(lot) for lot in c["lots"]], c["unrealized_raw"])
        want = (p.qty, p.cost, p.realized, p.fees_quote, p.fills, p.bought, p.sold, p.lots,
                ref.unrealized(owner, iid))
        assert got == want, (owner, iid)
        assert c["fees_other"] == p.fees_other
    for owner in (*OWNERS, ALL):
        assert compiled.equity(owner) == ref.equity(owner)
    got_bal = {(int(m), a): v.scaleb(18) for (m, a), v in compiled.balances().items()}
    assert got_bal == {k: v for k, v in ref.balances.items() if v != 0}
