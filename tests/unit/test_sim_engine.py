"""The simulator's matching engine: Binance's rejection codes, order types, positions; the generator."""

import pytest

from extrema.sim import GeneratedMarket
from extrema.sim.matching import BUY, SELL, MatchingEngine, Reject, SymbolSpec

SPOT_BTC = SymbolSpec("BTCUSDT", "BTC", "USDT", tick="0.01", step="0.00001", min_notional="5")
USDM_BTC = SymbolSpec("BTCUSDT", "BTC", "USDT", tick="0.10", step="0.001", min_notional="100", price_precision=2)


def spot():
    e = MatchingEngine("spot", [SPOT_BTC], balances={"USDT": "1000", "BTC": "2"})
    e.add_liquidity("BTCUSDT", SELL, 6000000, 100000)  # 1.0 @ 60000.00
    e.add_liquidity("BTCUSDT", SELL, 6000100, 100000)
    e.add_liquidity("BTCUSDT", BUY, 5999900, 100000)
    e.drain()
    return e


def usdm():
    e = MatchingEngine("usdm", [USDM_BTC], balances={"USDT": "1000"}, leverage=10)
    e.add_liquidity("BTCUSDT", SELL, 600000, 5000)  # 5 @ 60000.0
    e.add_liquidity("BTCUSDT", BUY, 599990, 5000)
    e.drain()
    return e


def code(fn, *a, **k):
    with pytest.raises(Reject) as info:
        fn(*a, **k)
    return info.value.code, info.value.msg


def test_spot_rejections_use_binance_codes():
    e = spot()
    s = "BTCUSDT"
    assert code(e.submit, s, BUY, "LIMIT", qty=10000000, price=5000000, tif="GTC") == \
        (-2010, "Account has insufficient balance for requested action.")
    assert code(e.submit, s, BUY, "LIMIT", qty=1000, price=0, tif="GTC") == (-1013, "Filter failure: PRICE_FILTER")
    assert code(e.submit, s, BUY, "LIMIT", qty=0, price=5000000, tif="GTC") == (-1013, "Filter failure: LOT_SIZE")
    assert code(e.submit, s, BUY, "LIMIT", qty=1000, price=1, tif="GTC") == (-1013, "Filter failure: NOTIONAL")
    assert code(e.submit, s, BUY, "LIMIT_MAKER", qty=1000, price=6000000) == \
        (-2010, "Order would immediately match and take.")
    assert code(e.cancel, s, 999) == (-2011, "Unknown order sent.")
    assert code(e.submit, "ETHUSDT", BUY, "LIMIT", qty=1, price=1, tif="GTC") == (-1121, "Invalid symbol.")
    e.submit(s, BUY, "LIMIT", qty=1000, price=5000000, tif="GTC", client_id="abc")
    assert code(e.submit, s, BUY, "LIMIT", qty=1000, price=5000000, tif="GTC", client_id="abc") == \
        (-2010, "Duplicate order sent.")
    e.cancel(s, client_id="abc")
    e.submit(s, BUY, "LIMIT", qty=1000, price=5000000, tif="GTC", client_id="abc")  # id free again once closed


def test_spot_partial_fill_then_rest_and_balances():
    e = spot()
    order, fills = e.submit("BTCUSDT", BUY, "LIMIT", qty=1500, price=6000000, tif="GTC")  # 0.015 BTC
    assert not fills or fills[0].qty == 1500  # the whole 0.015 fits in the 1.0 at 60000
    assert order.status == "FILLED" and order.filled == 1500
    # 0.015 BTC * 60000 = 900 USDT, fee 0.1 % of the base received
    assert e.balances["USDT"] == [100_00000000, 0]
    assert e.balances["BTC"][0] == 2_00000000 + 1_500_000 - 1_500
    order, fills = e.submit("BTCUSDT", SELL, "LIMIT", qty=150000, price=5999900, tif="GTC")
    assert fills[0].qty == 100000 and order.status == "PARTIALLY_FILLED"
    assert e.book_snapshot("BTCUSDT", 1)[2] == [(5999900, 50000)]  # the rest rests as the best ask
    assert e.balances["BTC"][1] == 50000 * 1000  # 0.5 BTC still locked for it


def test_ioc_fok_market():
    e = spot()
    o, _ = e.submit("BTCUSDT", SELL, "LIMIT", qty=150000, price=5999900, tif="IOC")
    assert (o.status, o.filled) == ("EXPIRED", 100000)
    o, fills = e.submit("BTCUSDT", BUY, "LIMIT", qty=200, price=5999000, tif="FOK")
    assert (o.status, o.filled, fills) == ("EXPIRED", 0, [])
    o, fills = e.submit("BTCUSDT", BUY, "MARKET", quote_qty=60_0000000)  # 60 USDT at 60000 -> 0.001
    assert o.status == "FILLED" and o.filled == 100


def test_resting_user_order_fills_from_generated_flow_in_queue_order():
    e = spot()
    o, _ = e.submit("BTCUSDT", SELL, "LIMIT", qty=10000, price=6000000, tif="GTC")  # behind 1.0 background
    e.market_flow("BTCUSDT", BUY, 100000)
    assert o.filled == 0  # the background ahead took it all
    e.market_flow("BTCUSDT", BUY, 4000)
    assert (o.status, o.filled) == ("PARTIALLY_FILLED", 4000)
    e.cancel_liquidity("BTCUSDT", SELL, 6000000, 10**9)  # background cancels never touch the user order
    assert e.books["BTCUSDT"].qty_at(SELL, 6000000) == 6000


def test_replay_trade_through_fills_user_completely():
    e = spot()
    o, _ = e.submit("BTCUSDT", BUY, "LIMIT", qty=1000, price=5999950, tif="GTC")
    e.replay_trade("BTCUSDT", SELL, 5999900, 1)  # a recorded sell printed below the user's bid
    assert o.status == "FILLED"


def test_usdm_position_pnl_reduce_only_post_only_margin():
    e = usdm()
    s = "BTCUSDT"
    o, fills = e.submit(s, BUY, "MARKET", qty=100)  # 0.1 BTC @ 60000 = 6000 notional, 600 margin at 10x
    pos = e.positions[s]
    assert pos.amount == 100 and pos.cost == 600000 * 100
    assert e.balances["USDT"][0] == 1000_00000000 - 3_00000000  # taker 0.05 % of 6000
    assert code(e.submit, s, BUY, "LIMIT", qty=5, price=610000, tif="GTX")[0] == -5022
    assert code(e.submit, s, BUY, "MARKET", qty=10, reduce_only=True) == (-2022, "ReduceOnly Order is rejected.")
    assert code(e.submit, s, BUY, "LIMIT", qty=1000, price=599000, tif="GTC") == (-2019, "Margin is insufficient.")
    assert code(e.submit, s, BUY, "LIMIT", qty=1, price=599000, tif="GTC")[0] == -4164
    e.cancel_liquidity(s, SELL, 600000, 10**9)
    e.add_liquidity(s, BUY, 601000, 1000)  # the asks left, someone bids 60100.0 now
    o, fills = e.submit(s, SELL, "MARKET", qty=300, reduce_only=True)  # capped to the 0.1 position
    assert o.qty == 100 and pos.amount == 0
    assert fills[0].realized_pnl == 10_00000000  # (60100 - 60000) * 0.1
    r, _ = e.submit(s, SELL, "LIMIT", qty=50, price=620000, tif="GTC")
    m = e.modify(s, SELL, 40, 620000, order_id=r.order_id)
    assert m.qty == 40 and e.books[s].qty_at(SELL, 620000) == 40
    assert code(e.modify, s, SELL, 40, 620000, order_id=r.order_id)[0] == -5027
    assert code(e.cancel, s, 12345)[0] == -2011


def _states(seed, n=400):
    gen = GeneratedMarket(seed=seed, symbols=["BTCUSDT"])
    e = MatchingEngine("spot", gen.specs("spot"))
    gen.init_book(e)
    out = []
    for _ in range(n):
        gen.step(e)
        b = e.books["BTCUSDT"]
        out.append((b.update_id, b.best(BUY), b.best(SELL), b.qty_at(BUY, b.best(BUY) or 0)))
    return out, gen, e


def test_generator_is_deterministic_and_plausible():
    a, gen, e = _states(7)
    b, _, _ = _states(7)
    c, _, _ = _states(8)
    assert a == b and a != c
    spreads = [ask - bid for _, bid, ask, _ in a if bid and ask]
    assert all(s > 0 for s in spreads)  # never crossed
    assert sum(1 for s in spreads if s == 1) > len(spreads) // 2  # mostly a one-tick spread
    assert e.next_trade_id["BTCUSDT"] > 10  # market orders traded
    assert gen.sim_time > 0
