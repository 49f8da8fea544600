"""Binance symbols <-> normalised names and instrument registration, on the real exchangeInfo fixtures."""

import copy
import datetime as dt
import json
from decimal import Decimal

import pytest

from extrema import InstrumentKind, InstrumentRegistry, Market, UnknownInstrumentError, parse_name
from extrema.adapters.binance import (
    guess_name, name_for_symbol, name_from_symbol_info, parse_exchange_info, register_exchange_info,
    strip_decimal, venue_symbol_for_name)

SPOT, USDM = Market.BINANCE_SPOT, Market.BINANCE_USDM

EXCHANGE_INFOS = [
    (SPOT, "nautilus_py/http_responses/http_spot_market_exchange_info.json"),
    (USDM, "nautilus_py/http_responses/http_futures_market_exchange_info.json"),
    (SPOT, "nautilus_rust/spot/http_json/exchange_info_response.json"),
]


def _load(fixtures_dir, path):
    return json.loads((fixtures_dir / "binance" / path).read_text())


def _filter(info, kind):
    return next((f for f in info["filters"] if f["filterType"] == kind), None)


def _expected_name(market, info):
    """The name written out independently of the adapter: base/quote from exchangeInfo, expiry from
    deliveryDate in UTC."""
    base, quote = info["baseAsset"], info["quoteAsset"]
    if market == SPOT:
        return f"{base}_{quote}"
    if info["contractType"] == "PERPETUAL":
        return f"{base}_{quote}_PERP"
    day = dt.datetime.fromtimestamp(info["deliveryDate"] / 1000, tz=dt.timezone.utc)
    return f"{base}_{quote}_FUT_{day:%Y%m%d}"


@pytest.mark.parametrize("market,path", EXCHANGE_INFOS)
def test_every_symbol_round_trips(fixtures_dir, market, path):
    exchange_info = _load(fixtures_dir, path)
    registry = InstrumentRegistry()
    instruments = register_exchange_info(registry, market, exchange_info)
    by_symbol = {i.venue_symbol: i for i in instruments}
    checked = 0
    for info in exchange_info["symbols"]:
        symbol = info["symbol"]
        name = _expected_name(market, info)
        assert name_from_symbol_info(market, info) == name
        assert venue_symbol_for_name(market, name) == symbol
        assert guess_name(market, symbol) == name
        price, lot = _filter(info, "PRICE_FILTER"), _filter(info, "LOT_SIZE")
        if info["status"] != "TRADING" or price is None or lot is None:
            assert symbol not in by_symbol
            continue
        inst = by_symbol[symbol]
        assert name_for_symbol(registry, market, symbol) == name == inst.name
        assert registry.get(market, name) is inst
        assert inst.market == market and inst.venue_symbol == symbol
        assert inst.tick_size == Decimal(price["tickSize"])
        assert inst.price_precision == -Decimal(price["tickSize"]).normalize().as_tuple().exponent
        assert inst.lot_size == Decimal(lot["stepSize"])
        notional = _filter(info, "MIN_NOTIONAL")
        expected_min = Decimal(notional["minNotional"] if market == SPOT else notional["notional"])
        assert inst.min_notional == expected_min
        kind = parse_name(name).kind
        assert kind == (InstrumentKind.SPOT if market == SPOT else
                        InstrumentKind.PERPETUAL if info["contractType"] == "PERPETUAL" else InstrumentKind.FUTURE)
        checked += 1
    assert checked == len(instruments)
    assert len(registry) == len(instruments)


def test_fixture_contents_registered(fixtures_dir):
    registry = InstrumentRegistry()
    spot = register_exchange_info(registry, SPOT, _load(fixtures_dir, EXCHANGE_INFOS[0][1]))
    usdm = register_exchange_info(registry, USDM, _load(fixtures_dir, EXCHANGE_INFOS[1][1]))
    assert [i.name for i in spot] == ["BTC_USDT", "ETH_USDT"]
    assert [i.name for i in usdm] == ["BTC_USDT_PERP", "ETH_USDT_PERP", "BTC_USDT_FUT_20220325"]
    btc = registry.by_venue_symbol(SPOT, "BTCUSDT")
    assert (btc.tick_size, btc.lot_size, btc.price_precision, btc.size_precision) == \
        (Decimal("0.01"), Decimal("0.00001"), 2, 5)
    assert btc.min_notional == 10
    fut = registry.by_venue_symbol(USDM, "BTCUSDT_220325")
    assert fut.name == "BTC_USDT_FUT_20220325" and fut.parts.expiry == dt.date(2022, 3, 25)
    # The same venue symbol is a different instrument on each market.
    assert registry.by_venue_symbol(USDM, "BTCUSDT").name == "BTC_USDT_PERP"
    with pytest.raises(UnknownInstrumentError):
        name_for_symbol(registry, SPOT, "BTCUSDT_220325")


def test_rules_keep_market_lot_size_and_disabled_filters(fixtures_dir):
    rules, skipped = parse_exchange_info(SPOT, _load(fixtures_dir, EXCHANGE_INFOS[0][1]))
    assert skipped == []
    btc = rules[0]
    assert btc.market_lot_size is None                      # MARKET_LOT_SIZE stepSize 0.00000000: disabled
    assert btc.market_max_qty == Decimal("112.2110882")
    assert (btc.min_qty, btc.max_qty, btc.max_num_orders) == (Decimal("0.00001"), Decimal("9000"), 200)
    usdm_rules, _ = parse_exchange_info(USDM, _load(fixtures_dir, EXCHANGE_INFOS[1][1]))
    assert usdm_rules[0].market_lot_size == Decimal("0.001") and usdm_rules[0].min_price == Decimal("402")


def test_current_spot_notional_filter(fixtures_dir):
    """Spot replaced MIN_NOTIONAL by NOTIONAL (minNotional / maxNotional / applyMinToMarket)."""
    info = copy.deepcopy(_load(fixtures_dir, EXCHANGE_INFOS[0][1]))
    sym = info["symbols"][0]
    sym["filters"] = [f for f in sym["filters"] if f["filterType"] != "MIN_NOTIONAL"] + [
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": False,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}]
    rules, _ = parse_exchange_info(SPOT, info)
    assert (rules[0].min_notional, rules[0].max_notional, rules[0].min_notional_applies_to_market) == \
        (Decimal(5), Decimal(9000000), False)


def test_symbols_that_cannot_be_registered_are_skipped_with_a_reason(fixtures_dir, caplog):
    info = copy.deepcopy(_load(fixtures_dir, EXCHANGE_INFOS[1][1]))
    info["symbols"][1]["status"] = "SETTLING"
    info["symbols"][2]["deliveryDate"] += 86_400_000            # no longer matches the _220325 suffix
    unicode_symbol = copy.deepcopy(info["symbols"][0])
    unicode_symbol.update(symbol="这是测试币456USDT", baseAsset="这是测试币456", pair="这是测试币456USDT")
    odd_contract = copy.deepcopy(info["symbols"][0])
    odd_contract.update(symbol="XYZUSDT", baseAsset="XYZ", contractType="SOMETHING_NEW")
    info["symbols"] += [unicode_symbol, odd_contract]
    registry = InstrumentRegistry()
    with caplog.at_level("WARNING", logger="extrema.adapters.binance.symbols"):
        got = register_exchange_info(registry, USDM, info)
    assert [i.name for i in got] == ["BTC_USDT_PERP"]
    _, skipped = parse_exchange_info(USDM, info)
    reasons = {s.venue_symbol: s.reason for s in skipped}
    assert "TRADING" in reasons["ETHUSDT"]
    assert "deliveryDate" in reasons["BTCUSDT_220325"]
    assert "letters and digits" in reasons["这是测试币456USDT"]
    assert "SOMETHING_NEW" in reasons["XYZUSDT"]
    assert len([r for r in caplog.records if "not registered" in r.getMessage()]) == 4
    rust = _load(fixtures_dir, EXCHANGE_INFOS[2][1])           # a docs example with empty filters
    assert parse_exchange_info(SPOT, rust)[1][0].reason.startswith("no PRICE_FILTER")


def test_reregistration_and_changed_grids(fixtures_dir):
    info = _load(fixtures_dir, EXCHANGE_INFOS[0][1])
    registry = InstrumentRegistry()
    first = register_exchange_info(registry, SPOT, info)
    assert register_exchange_info(registry, SPOT, info) == first     # identical: same objects and ids
    changed = copy.deepcopy(info)
    _filter(changed["symbols"][0], "PRICE_FILTER")["tickSize"] = "0.10000000"
    with pytest.raises(ValueError, match="different specification"):
        register_exchange_info(registry, SPOT, changed)
    again = register_exchange_info(registry, SPOT, changed, replace=True)
    assert again[0].id == first[0].id and again[0].tick_size == Decimal("0.1")


@pytest.mark.parametrize("market,symbol,name", [
    # Symbols of the real captures (no exchangeInfo with them): the quote-suffix fallback.
    (SPOT, "BLZETH", "BLZ_ETH"), (SPOT, "LRCBTC", "LRC_BTC"), (SPOT, "NKNUSDT", "NKN_USDT"),
    (SPOT, "RUNEEUR", "RUNE_EUR"), (SPOT, "BTCFDUSD", "BTC_FDUSD"), (SPOT, "1000SATSUSDT", "1000SATS_USDT"),
    (USDM, "AKROUSDT", "AKRO_USDT_PERP"), (USDM, "SUSHIUSDT", "SUSHI_USDT_PERP"),
    (USDM, "BTCUSDT_231229", "BTC_USDT_FUT_20231229"), (USDM, "ETHUSDC", "ETH_USDC_PERP"),
])
def test_guess_name_and_back(market, symbol, name):
    assert guess_name(market, symbol) == name
    assert venue_symbol_for_name(market, name) == symbol


def test_bad_symbols_and_names():
    with pytest.raises(ValueError, match="without exchangeInfo"):
        guess_name(SPOT, "FOOBAR")
    with pytest.raises(ValueError, match="delivery contract"):
        guess_name(SPOT, "BTCUSDT_231229")
    with pytest.raises(ValueError, match="not a date"):
        guess_name(USDM, "BTCUSDT_231399")
    with pytest.raises(ValueError, match="not a spot instrument"):
        venue_symbol_for_name(SPOT, "BTC_USDT_PERP")
    with pytest.raises(ValueError, match="perpetuals"):
        venue_symbol_for_name(USDM, "BTC_USDT")
    with pytest.raises(ValueError, match="not a Binance market"):
        venue_symbol_for_name(Market.OKX, "BTC_USDT")
    with pytest.raises(ValueError, match="does not parse"):
        venue_symbol_for_name(SPOT, "BTCUSDT")
    with pytest.raises(ValueError, match="not an exchangeInfo"):
        parse_exchange_info(SPOT, {"code": -1121, "msg": "Invalid symbol."})


@pytest.mark.parametrize("text,expected", [
    ("0.01000000", "0.01"), ("10.00000000", "10"), ("1000", "1000"), ("0.00000001", "0.00000001"),
    ("1E+3", "1000"), ("402", "402"), ("1246396.60", "1246396.6"), ("0", "0"),
])
def test_strip_decimal(text, expected):
    d = strip_decimal(text)
    assert format(d, "f") == expected and d.as_tuple().exponent <= 0


def test_strip_decimal_rejects_garbage():
    for bad in ("abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            strip_decimal(bad)


def test_sub_micro_ticks_register_exactly(fixtures_dir):
    """Ticks like 0.00000001 (str() writes '1E-8') reach the registry as plain decimals."""
    info = copy.deepcopy(_load(fixtures_dir, EXCHANGE_INFOS[0][1]))
    _filter(info["symbols"][0], "PRICE_FILTER")["tickSize"] = "0.00000001"
    _filter(info["symbols"][0], "LOT_SIZE")["stepSize"] = "1.00000000"
    inst = register_exchange_info(InstrumentRegistry(), SPOT, info)[0]
    assert (inst.tick_size, inst.lot_size, inst.price_precision, inst.size_precision) == \
        (Decimal("0.00000001"), Decimal(1), 8, 0)
    assert inst.tick_raw == 1 and inst.min_notional_raw == 10 * 10**8
