"""Exact decimal decoding: the compiled parser against the `decimal`-based oracle, fuzzed."""
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

import extrema
from extrema import parse_decimal, format_decimal, to_raw, raw_to_float
from models.fixedpoint_reference import reference_parse, reference_format, INT64_MAX

precisions = st.integers(min_value=0, max_value=18)


def outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except ValueError:
        return ("error", None)


@pytest.mark.parametrize("text, precision, raw", [
    ("0.35130000", 4, 3513),              # Binance pads to 8 decimals whatever the tick
    ("0.35130000", 8, 35130000),
    ("7.6110", 3, 7611),
    ("100", 2, 10000),
    ("-1.25", 2, -125),
    ("+1.25", 2, 125),
    (".5", 1, 5),
    ("5.", 0, 5),
    ("1.5e-3", 4, 15),
    ("1E+2", 0, 100),
    ("0e999999", 2, 0),
    ("0.000", 0, 0),
    ("9223372036854775807", 0, INT64_MAX),
    ("92233720368.54775807", 8, INT64_MAX),
    ("00000000000000000000000001.1000000000000000000000000", 1, 11),
])
def test_known_values(text, precision, raw):
    assert parse_decimal(text, precision) == raw
    assert parse_decimal(text.encode(), precision) == raw


@pytest.mark.parametrize("text, reason", [
    ("", "empty text"),
    ("abc", "not a decimal number"),
    ("1.2.3", "not a decimal number"),
    (" 1", "not a decimal number"),
    ("1e", "not a decimal number"),
    ("-", "not a decimal number"),
    ("0.123456", "more non-zero decimals"),
    ("9223372036854775808", "out of the int64 range"),
    ("1e30", "out of the int64 range"),
    ("NaN", "NaN and infinity"),
    ("-Infinity", "NaN and infinity"),
    ("inf", "NaN and infinity"),
])
def test_errors_name_the_input_and_the_reason(text, reason):
    with pytest.raises(ValueError) as e:
        parse_decimal(text, 4)
    assert repr(text) in str(e.value) and reason in str(e.value)


def test_negative_sizes_are_rejected_when_asked():
    with pytest.raises(ValueError, match="negative"):
        parse_decimal("-0.5", 2, allow_negative=False)
    assert parse_decimal("-0", 2, allow_negative=False) == 0


def test_bad_precision():
    with pytest.raises(ValueError, match="precision"):
        parse_decimal("1", 19)
    with pytest.raises(ValueError, match="precision"):
        format_decimal(1, -1)


@settings(max_examples=600, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None,
                   min_value=Decimal("-1e20"), max_value=Decimal("1e20")), precisions)
def test_decimals_match_the_oracle(value, precision):
    for text in (str(value), f"{value:f}", f"{value:e}"):
        assert outcome(parse_decimal, text, precision) == outcome(reference_parse, text, precision)


decimal_alphabet = st.sampled_from(list("0123456789.-+eE") + ["nan", "inf", "x", " "])


@settings(max_examples=1500, deadline=None)
@given(st.lists(decimal_alphabet, max_size=30).map("".join), precisions, st.booleans())
def test_fuzzed_text_matches_the_oracle(text, precision, allow_negative):
    assert (outcome(parse_decimal, text, precision, allow_negative=allow_negative)
            == outcome(reference_parse, text, precision, allow_negative))


# The inline fast path of ex_parse_fixed takes plain "digits[.digits]" of up to 20 characters (what
# venues send); everything else goes to the general path. Aim at its edges: 18..21 digits (the uint64
# accumulator), trailing zeros past the precision, "5." / ".5", leading zeros, INT64_MAX neighbours.
plain_decimal = st.builds(
    lambda int_part, frac_part, point: int_part + ("." if point else "") + frac_part,
    st.text("0123456789", max_size=21), st.text("0123456789", max_size=21), st.booleans())


@settings(max_examples=2000, deadline=None)
@given(plain_decimal, precisions)
def test_plain_decimals_fast_path_matches_the_oracle(text, precision):
    assert outcome(parse_decimal, text, precision) == outcome(reference_parse, text, precision)


@pytest.mark.parametrize("text", ["9223372036854775807", "9223372036854775808", "18446744073709551615",
                                  "18446744073709551616", "99999999999999999999", "1844674407.3709551616",
                                  "0.0000000000000000001", "1.000000000000000000", "12345678901234567890."])
@pytest.mark.parametrize("precision", [0, 1, 8, 18])
def test_fast_path_edges_match_the_oracle(text, precision):
    assert outcome(parse_decimal, text, precision) == outcome(reference_parse, text, precision)


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=40), precisions)
def test_arbitrary_bytes_never_crash(data, precision):
    kind, raw = outcome(parse_decimal, data, precision)
    if kind == "ok":
        assert raw == reference_parse(data.decode("ascii"), precision)


@settings(max_examples=800, deadline=None)
@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), precisions)
def test_format_is_exact_and_round_trips(raw, precision):
    text = format_decimal(raw, precision)
    assert text == reference_format(raw, precision)
    assert parse_decimal(text, precision) == raw


def test_format_int64_min():
    assert format_decimal(-(2**63), 2) == "-92233720368547758.08"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=8))
def test_floats_at_the_user_boundary(raw, precision):
    x = raw / 10**precision
    assert to_raw(x, precision) == raw              # the nearest double to a decimal is accepted
    assert raw_to_float(raw, precision) == x        # and converts back correctly rounded


@pytest.mark.parametrize("value, precision, raw", [
    (Decimal("1.25"), 2, 125), ("1.25", 2, 125), (b"1.25", 2, 125), (3, 2, 300), (0.1, 1, 1)])
def test_to_raw_accepts_user_values(value, precision, raw):
    assert to_raw(value, precision) == raw


@pytest.mark.parametrize("value, error", [
    (0.15, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), (1e30, ValueError),
    (2**80, ValueError), (Decimal("NaN"), ValueError), (True, TypeError), (None, TypeError), ([1], TypeError)])
def test_to_raw_rejects_what_is_not_exact(value, error):
    with pytest.raises(error):
        to_raw(value, 1)


def test_compiled_parser_ran():
    assert extrema._core.fixedpoint.__file__.endswith(".so")
