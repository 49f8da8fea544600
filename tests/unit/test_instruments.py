"""Normalised instrument names and the registry."""
import datetime as dt
import pickle
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from extrema import (Instrument, InstrumentKind, InstrumentName, InstrumentRegistry, Market,
                     UnknownInstrumentError, format_name, parse_name)


@pytest.mark.parametrize("name, kind", [
    ("BTC_USDT", InstrumentKind.SPOT),
    ("BTC_USDT_PERP", InstrumentKind.PERPETUAL),
    ("BTC_USDT_FUT_20261225", InstrumentKind.FUTURE),
    ("BTC_USD_OPT_20261225_100000_C", InstrumentKind.OPTION),
    ("DOGE_USDC_OPT_20270101_0.125_P", InstrumentKind.OPTION),
    ("AAPL_NASDAQ_EQ", InstrumentKind.EQUITY),
    ("BRK.B_NYSE_EQ", InstrumentKind.EQUITY),
    ("kPEPE_USD_PERP", InstrumentKind.PERPETUAL),
    ("1000PEPE_USDT_PERP", InstrumentKind.PERPETUAL),
])
def test_examples_round_trip(name, kind):
    parts = parse_name(name)
    assert parts.kind == kind
    assert format_name(parts) == str(parts) == name


def test_parts_of_an_option():
    p = parse_name("BTC_USD_OPT_20261225_100000_C")
    assert (p.base, p.quote, p.expiry, p.strike, p.right) == ("BTC", "USD", dt.date(2026, 12, 25),
                                                               Decimal(100000), "C")


@pytest.mark.parametrize("name, why", [
    ("BTC-USDT", "too few parts separated by '_'"),
    ("BTCUSDT", "too few parts"),
    ("BTC_USDT_SWAP", "unknown instrument type"),
    ("BTC_USDT_PERP_X", "wrong number of parts"),
    ("BTC_USDT_FUT_2026122", "YYYYMMDD"),
    ("BTC_USDT_FUT_20261332", "not a date"),
    ("BTC_USD_OPT_20261225_100000_X", "must be C or P"),
    ("BTC_USD_OPT_20261225_0100_C", "plain decimal"),
    ("BTC_USD_OPT_20261225_1.50_C", "plain decimal"),
    ("BTC_USD_OPT_20261225_1e5_C", "plain decimal"),
    ("BTC_PERP", "reserved word"),
    ("_USDT", "letters and digits"),
    ("", "too few parts"),
])
def test_bad_names_say_what_is_wrong(name, why):
    with pytest.raises(ValueError) as e:
        parse_name(name)
    assert repr(name) in str(e.value) and why in str(e.value) and "BTC_USDT_PERP" in str(e.value)


codes = st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True).filter(lambda c: c not in {"PERP", "FUT", "OPT", "EQ"})
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2199, 12, 31))
strikes = st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False)
names = st.one_of(
    st.builds(lambda b, q: InstrumentName(InstrumentKind.SPOT, b, q), codes, codes),
    st.builds(lambda b, q: InstrumentName(InstrumentKind.PERPETUAL, b, q), codes, codes),
    st.builds(lambda b, q, d: InstrumentName(InstrumentKind.FUTURE, b, q, expiry=d), codes, codes, dates),
    st.builds(lambda b, q, d, k, r: InstrumentName(InstrumentKind.OPTION, b, q, expiry=d, strike=k, right=r),
              codes, codes, dates, strikes, st.sampled_from("CP")),
    st.builds(lambda s, x: InstrumentName(InstrumentKind.EQUITY, s, exchange=x), codes, codes),
)


@settings(max_examples=400, deadline=None)
@given(names)
def test_format_then_parse_round_trips(parts):
    text = format_name(parts)
    assert parse_name(text) == parts
    assert format_name(parse_name(text)) == text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ABC019._-PERFUTOQ", max_size=30))
def test_any_text_parses_canonically_or_fails_clearly(text):
    try:
        parts = parse_name(text)
    except ValueError as e:
        assert repr(text) in str(e)
    else:
        assert format_name(parts) == text


def test_instrument_precision_from_tick_and_lot():
    i = Instrument("BTC_USDT_PERP", Market.BINANCE_USDM, "0.10", "0.001", min_notional="5", multiplier="1",
                   venue_symbol="BTCUSDT")
    assert (i.price_precision, i.size_precision, i.tick_raw, i.lot_raw) == (1, 3, 1, 1)
    assert i.tick_size == Decimal("0.1") and i.lot_size == Decimal("0.001") and i.min_notional == 5
    assert i.kind == InstrumentKind.PERPETUAL and i.base == "BTC" and i.quote == "USDT"
    j = Instrument("ES_USD_FUT_20261218", Market.SIM, "0.25", "1", price_precision=4)
    assert (j.price_precision, j.tick_raw) == (4, 2500)
    assert pickle.loads(pickle.dumps(i)) == i


@pytest.mark.parametrize("kw, match", [
    (dict(tick_size="0"), "tick_size must be a positive"),
    (dict(tick_size="-0.1"), "tick_size must be a positive"),
    (dict(lot_size="abc"), "not a decimal"),
    (dict(tick_size="0.001", price_precision=2), "cannot represent tick_size"),
    (dict(multiplier="nan"), "multiplier must be a positive"),
])
def test_bad_instrument_specs(kw, match):
    args = dict(tick_size="0.01", lot_size="0.001")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        Instrument("BTC_USDT", Market.SIM, **args)


def test_registry_ids_and_lookups():
    reg = InstrumentRegistry()
    a = reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT")
    b = reg.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.001", venue_symbol="BTCUSDT")
    assert (a.id, b.id) == (1, 2) and len(reg) == 2 and list(reg) == [a, b]
    assert reg[1] is a and reg.get(Market.BINANCE_USDM, "BTC_USDT_PERP") is b
    assert reg.by_venue_symbol(Market.BINANCE_SPOT, "BTCUSDT") is a
    assert reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT") is a
    assert a in reg and 2 in reg and 3 not in reg


def test_registry_errors():
    reg = InstrumentRegistry()
    reg.register("ETH_USDT", Market.BINANCE_SPOT, "0.01", "0.0001", venue_symbol="ETHUSDT")
    with pytest.raises(ValueError, match="different specification"):
        reg.register("ETH_USDT", Market.BINANCE_SPOT, "0.1", "0.0001", venue_symbol="ETHUSDT")
    changed = reg.register("ETH_USDT", Market.BINANCE_SPOT, "0.1", "0.0001", venue_symbol="ETHUSDT", replace=True)
    assert changed.id == 1 and changed.tick_size == Decimal("0.1") and reg[1] is changed
    with pytest.raises(ValueError, match="already belongs"):
        reg.register("ETH_BTC", Market.BINANCE_SPOT, "0.01", "0.0001", venue_symbol="ETHUSDT")
    with pytest.raises(UnknownInstrumentError, match="no instrument with id 7"):
        reg[7]
    with pytest.raises(UnknownInstrumentError, match="no instrument with id 0"):
        reg[0]
    with pytest.raises(UnknownInstrumentError, match="'SOL_USDT' on BINANCE_SPOT"):
        reg.get(Market.BINANCE_SPOT, "SOL_USDT")
    with pytest.raises(ValueError, match="does not parse"):
        reg.get(Market.BINANCE_SPOT, "SOL-USDT")
    with pytest.raises(UnknownInstrumentError, match="SOLUSDT"):
        reg.by_venue_symbol(Market.BINANCE_SPOT, "SOLUSDT")
    with pytest.raises(ValueError):
        reg.register("SOL_USDT", 99, "0.01", "0.01")
