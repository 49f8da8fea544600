"""Positions, P&L (FIFO / LIFO / average cost), fees, marks and balances of the compiled Portfolio."""
import math
from decimal import Decimal

import numpy as np
import pytest

import extrema
from extrema import InstrumentRegistry, Market, OrderBook
from extrema._core.portfolio import ALL, EXTERNAL, POSITION_DTYPE, AssetRegistry, Portfolio
from order_records import fill


@pytest.fixture
def reg():
    r = InstrumentRegistry()
    r.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001")           # id 1: pp 2, sp 5
    r.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.001")         # id 2: pp 1, sp 3
    r.register("BTC_USD_PERP", Market.OKX, "0.1", "1", multiplier="0.01")    # id 3: contracts of 0.01 BTC... in USD
    r.register("BTC_USD_OPT_20261225_100000_C", Market.DERIBIT, "0.0001", "0.1")  # id 4
    return r


def pos(p, owner, iid):
    return p.position(owner, iid)


@pytest.mark.parametrize("method, realized", [("fifo", 20_00), ("lifo", 10_00), ("average", 15_00)])
def test_accounting_methods(reg, method, realized):
    p = Portfolio(reg, method)
    p.fill(0, 1, "buy", 100_00, 100_000)      # 1 BTC @ 100
    p.fill(0, 1, "buy", 110_00, 100_000)      # 1 BTC @ 110
    p.fill(0, 1, "sell", 120_00, 100_000)     # 1 BTC @ 120
    d = pos(p, 0, 1)
    assert d["quantity"] == Decimal("1") and d["quantity_raw"] == 100_000
    # realized raw is at pp + sp = 7 decimals
    assert d["realized_raw"] == realized * 100_000 and d["realized"] == Decimal(realized) / 100
    remaining_cost = {"fifo": 110_00, "lifo": 100_00, "average": 105_00}[method] * 100_000
    assert d["cost_raw"] == remaining_cost
    assert d["lots"] == ([] if method == "average" else [(remaining_cost // 100_000, 100_000)])
    assert pos(p, ALL, 1)["realized_raw"] == d["realized_raw"]


def test_average_cost_truncates_toward_zero_and_closes_exactly(reg):
    p = Portfolio(reg, "average")
    p.fill(0, 1, "buy", 100_00, 3)
    p.fill(0, 1, "buy", 101_00, 3)        # cost 60300 for 6
    p.fill(0, 1, "sell", 102_00, 4)       # removes trunc(60300 * 4 / 6) = 40200
    d = pos(p, 0, 1)
    assert d["cost_raw"] == 60300 - 40200 and d["realized_raw"] == 102_00 * 4 - 40200
    p.fill(0, 1, "sell", 99_00, 2)        # closes the rest: whatever is left of the cost
    d = pos(p, 0, 1)
    assert d["quantity_raw"] == 0 and d["cost_raw"] == 0
    assert d["realized_raw"] == (102_00 * 4 + 99_00 * 2) - (100_00 * 3 + 101_00 * 3)


@pytest.mark.parametrize("method", ["fifo", "lifo", "average"])
def test_short_positions_and_flipping_through_zero(reg, method):
    p = Portfolio(reg, method)
    p.fill(0, 2, "sell", 1000_0, 2_000)       # short 2 @ 1000
    p.fill(0, 2, "buy", 990_0, 3_000)         # cover 2 (+20 realised), long 1 @ 990
    d = pos(p, 0, 2)
    assert d["quantity_raw"] == 1_000 and d["realized"] == Decimal(20)
    assert d["cost_raw"] == 990_0 * 1_000
    p.fill(0, 2, "sell", 1000_0, 1_000)
    assert pos(p, 0, 2)["realized"] == Decimal(30)


def test_strategies_net_in_the_venue_position(reg):
    p = Portfolio(reg, "fifo")
    p.fill(0, 2, "buy", 1000_0, 1_000)
    p.fill(1, 2, "sell", 1010_0, 1_000)
    assert pos(p, 0, 2)["quantity_raw"] == 1_000 and pos(p, 1, 2)["quantity_raw"] == -1_000
    a = pos(p, ALL, 2)
    assert a["quantity_raw"] == 0 and a["realized"] == Decimal(10)
    assert pos(p, 0, 2)["realized"] == 0 and p.active_instruments(0) == [2] and p.active_instruments(ALL) == [2]


def test_marks_by_priority(reg):
    p = Portfolio(reg, "average")
    p.fill(0, 1, "buy", 100_00, 100_000)
    assert p.mark(1) == 100.0 and pos(p, 0, 1)["unrealized"] == 0          # last fill
    p.on_trade(1, 101_00)
    assert p.mark(1) == 101.0 and pos(p, 0, 1)["unrealized"] == Decimal(1)
    p.on_quote(1, 102_00, 102_01)
    assert p.mark(1) == 102.005 and pos(p, 0, 1)["unrealized"] == Decimal("2.005")
    book = OrderBook(2, 5, instrument_id=1)
    book.apply_snapshot([(103.00, 1)], [(103.03, 1)])
    p.set_book(1, book)
    assert p.mark(1) == pytest.approx(103.015) and pos(p, 0, 1)["unrealized"] == Decimal("3.015")
    p.set_mark(1, 99_99)
    assert p.mark(1) == 99.99 and pos(p, 0, 1)["unrealized"] == Decimal("-0.01")
    p.set_mark(1, 0)
    book.clear()                          # an empty book gives no mid: fall back to the quote
    assert p.mark(1) == 102.005


def test_unrealised_of_a_half_tick_mid_truncates_toward_zero(reg):
    p = Portfolio(reg, "average")
    p.fill(0, 1, "sell", 100_00, 1)        # short 0.00001 @ 100
    p.on_quote(1, 100_00, 100_01)          # mid 100.005
    # (-1 x 20001 - 2 x -10000) / 2 = -0.5 -> 0 (toward zero)
    assert pos(p, 0, 1)["unrealized_raw"] == 0


def test_fees_in_quote_base_and_other_assets(reg):
    assets = AssetRegistry()
    bnb = assets.register("BNB", 8)
    btc = assets.register("BTC", 8)
    p = Portfolio(reg, "average", assets)
    p.set_rate("BNB", 600.0)
    p.fill(0, 1, "buy", 100_00, 100_000, fee_raw=10, fee_asset=0)          # 0.10 USDT (price precision)
    p.fill(0, 1, "buy", 100_00, 100_000, fee_raw=100_000, fee_asset=btc)   # 0.001 BTC at 100.00 = 0.1 USDT
    p.fill(0, 1, "sell", 100_00, 100_000, fee_raw=1_000_000, fee_asset=bnb)  # 0.01 BNB = 6.0 account
    d = pos(p, 0, 1)
    assert d["fees"] == Decimal("0.2") and d["fees_other"] == pytest.approx(6.0)
    assert p.equity(0) == pytest.approx(-6.2)
    # balances: spot moves base and quote; every fee leaves its asset
    assert p.balance(Market.BINANCE_SPOT, "BTC") == Decimal("1") - Decimal("0.001")
    assert p.balance(Market.BINANCE_SPOT, "USDT") == Decimal("-100") - Decimal("0.10")
    assert p.balance(Market.BINANCE_SPOT, "BNB") == Decimal("-0.01")
    with pytest.raises(ValueError, match="unknown fee asset"):
        p.fill(0, 1, "buy", 100_00, 1, fee_raw=1, fee_asset=999_999)


def test_a_decoders_fee_asset_id_means_the_same_asset_here(reg):
    """FILL records carry the process-wide asset ids the decoders assign (extrema.asset_id): a fee in an
    asset the portfolio has never seen is still charged in that asset, at the decoders' 8 decimals."""
    from extrema import asset_id
    p = Portfolio(reg, "average")
    aid = asset_id("FEECOIN")                 # what a decoder does on seeing "N": "FEECOIN"
    assert p.assets.get("FEECOIN") is None
    p.fill(0, 1, "buy", 100_00, 100_000, fee_raw=50_000_000, fee_asset=aid)     # 0.5 FEECOIN
    assert p.assets.code(aid) == "FEECOIN" and p.assets.precision(aid) == 8
    assert p.balance(Market.BINANCE_SPOT, "FEECOIN") == Decimal("-0.5")
    assert pos(p, 0, 1)["fees_other"] == pytest.approx(0.5)                     # rate 1.0 by default


def test_margin_and_premium_balances_and_the_multiplier(reg):
    p = Portfolio(reg, "fifo")
    p.set_balance(Market.OKX, "USD", "1000")
    p.fill(0, 3, "buy", 50000_0, 10)          # 10 contracts x 0.01 @ 50000
    p.fill(0, 3, "sell", 51000_0, 10)
    d = pos(p, 0, 3)
    assert d["realized"] == Decimal(1000) * 10 * Decimal("0.01")      # 100 USD
    assert p.balance(Market.OKX, "USD") == Decimal(1100)             # margin: realised P&L only
    assert p.balance(Market.OKX, "BTC") == 0
    p.fill(0, 4, "buy", 500, 10)              # option: 1 contract at 0.05 USD premium
    assert p.balance(Market.DERIBIT, "USD") == Decimal("-0.05")
    assert p.equity(0) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="more than 18 decimals"):
        p.set_balance(Market.OKX, "USD", "0.0000000000000000001")


def test_fill_records_and_external_orders(reg):
    p = Portfolio(reg, "average")
    ours = (5 << 6) | 3
    p.apply(np.concatenate([fill(2, ours, 1, 1000_0, 1_000), fill(2, (1 << 62) + 1, 2, 1000_0, 2_000, side=1)]))
    assert pos(p, 3, 2)["quantity_raw"] == 1_000 and pos(p, EXTERNAL, 2)["quantity_raw"] == -2_000
    assert pos(p, ALL, 2)["quantity_raw"] == -1_000


def test_snapshots(reg):
    p = Portfolio(reg, "average")
    p.fill(0, 1, "buy", 100_00, 150_000, fee_raw=3)
    p.fill(1, 2, "sell", 1000_0, 1_000)
    arr = p.positions()
    assert arr.dtype == POSITION_DTYPE and len(arr) == 4
    row = arr[(arr["owner"] == 0) & (arr["instrument_id"] == 1)][0]
    assert row["quantity"] == 1.5 and row["avg_price"] == 100.0 and row["fees"] == 0.03 and row["net"] == -0.03
    snap = p.snapshot({0: "mm", 1: "taker"})
    assert set(snap["positions"]) == {"mm", "taker", "all"}
    assert snap["positions"]["mm"]["BTC_USDT"]["quantity"] == Decimal("1.5")
    assert snap["balances"]["BINANCE_SPOT:BTC"] == Decimal("1.5")
    assert snap["equity"]["mm"] == pytest.approx(-0.03)
    assert p.positions(owner=7).shape == (0,)


def test_bad_fills_are_errors(reg):
    p = Portfolio(reg)
    with pytest.raises(ValueError):
        p.fill(0, 1, "buy", 100, 0)
    with pytest.raises(ValueError):
        p.fill(ALL, 1, "buy", 100, 1)
    with pytest.raises(extrema.UnknownInstrumentError):
        p.fill(0, 99, "buy", 100, 1)
    with pytest.raises(ValueError, match="method"):
        Portfolio(reg, "hifo")
    assert math.isnan(p.mark(1))
