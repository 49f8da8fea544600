"""Exact fixed-point numbers: venue decimal strings <-> int64 raw values, with no float step.

A price or quantity is an int64 `raw` at a per-instrument decimal `precision`: value = raw / 10**precision.
Venues send decimals as strings ("0.35130000"); parse_fixed turns the bytes straight into the raw
integer, so "0.1" is exactly 1 at precision 1, never 0.1000000000000000055511151231257827.

Accepted text: optional sign, digits with an optional '.', optional exponent (`1.5e-3`, as some venues and
JSON number encoders emit). Digits past `precision` are accepted only when they are zeros (Binance pads
every price to 8 decimals whatever the tick). Everything else is an error with a reason: empty text,
malformed text, non-zero digits past the precision, int64 overflow, NaN / infinity, a negative value
where none is allowed.
"""
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.math cimport isfinite, llround, fabs
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from extrema._core.ex_fixed cimport ex_pow10_u64, ex_pow10_f64, ex_raw_to_f64, EX_MAX_PRECISION, ex_parse_fixed

import decimal as _pydecimal

MAX_PRECISION = EX_MAX_PRECISION

cdef const char *_REASONS[8]
_REASONS[0] = b"ok"
_REASONS[1] = b"empty text"
_REASONS[2] = b"not a decimal number"
_REASONS[3] = b"more non-zero decimals than the precision allows"
_REASONS[4] = b"out of the int64 range at this precision"
_REASONS[5] = b"NaN and infinity are not prices or sizes"
_REASONS[6] = b"negative value not allowed here"
_REASONS[7] = b"precision must be between 0 and 18"


cdef FixedStatus parse_fixed(const char *s, Py_ssize_t n, int precision, bint allow_negative,
                             int64_t *out) noexcept nogil:
    """Parse decimal text s[0:n] into out = value * 10**precision exactly. Returns FIXED_OK or why not.
    The parser itself is ex_parse_fixed in ex_fixed.h, so hot decoders can inline the very same code;
    the FixedStatus values are its ex_fixed_status values."""
    return <FixedStatus>ex_parse_fixed(s, n, precision, allow_negative, out)


cdef Py_ssize_t format_fixed(int64_t raw, int precision, char *buf) noexcept nogil:
    """Write raw as decimal text with exactly `precision` decimals into buf (>= 42 bytes). Returns length."""
    cdef char tmp[24]
    cdef uint64_t mag = (<uint64_t>0 - <uint64_t>raw) if raw < 0 else <uint64_t>raw
    cdef int nd = 0
    cdef Py_ssize_t pos = 0
    cdef int i
    while mag != 0 or nd <= precision:        # at least one integer digit
        tmp[nd] = <char>(48 + mag % 10)
        mag //= 10
        nd += 1
    if raw < 0:
        buf[pos] = b'-'
        pos += 1
    for i in range(nd - 1, -1, -1):
        buf[pos] = tmp[i]
        pos += 1
        if i == precision and precision > 0:
            buf[pos] = b'.'
            pos += 1
    return pos


cdef object fixed_error(object text, int precision, FixedStatus status):
    return ValueError(f"cannot read {text!r} as a decimal at precision {precision}: "
                      f"{_REASONS[<int>status].decode()}")


cdef inline void _check_precision(int precision) except *:
    if precision < 0 or precision > EX_MAX_PRECISION:
        raise ValueError(f"precision must be between 0 and {EX_MAX_PRECISION}, got {precision}")


cdef int64_t _parse_text(object text, int precision, bint allow_negative) except? -1:
    cdef const char *s
    cdef Py_ssize_t n
    cdef int64_t raw
    cdef FixedStatus st
    if isinstance(text, str):
        s = PyUnicode_AsUTF8AndSize(text, &n)
    elif isinstance(text, bytes):
        s = PyBytes_AS_STRING(text)
        n = PyBytes_GET_SIZE(text)
    else:
        b = bytes(text)
        return _parse_text(b, precision, allow_negative)
    st = parse_fixed(s, n, precision, allow_negative, &raw)
    if st != FIXED_OK:
        raise fixed_error(text, precision, st)
    return raw


cdef int64_t value_to_raw(object value, int precision, bint allow_negative) except? -1:
    """A user value (str, bytes, int, float, Decimal) as raw at `precision`, exactly or not at all."""
    cdef double x, scaled, r
    cdef object big
    _check_precision(precision)
    if isinstance(value, float):
        # Floats come from users, never from venues. Accept one only when it is the nearest double to a
        # decimal with at most `precision` decimals (so 0.1 at precision 1 is fine, 0.15 at precision 1 is not).
        x = value
        if not isfinite(x):
            raise ValueError(f"cannot use {value!r} at precision {precision}: NaN and infinity are not prices or sizes")
        scaled = x * ex_pow10_f64[precision]
        if fabs(scaled) >= 9.2e18:
            raise ValueError(f"cannot use {value!r} at precision {precision}: out of the int64 range")
        r = <double>llround(scaled)
        if fabs(scaled - r) > 1e-9 + fabs(r) * 4.5e-16:
            raise ValueError(f"cannot use {value!r} at precision {precision}: "
                             f"more decimals than the precision allows")
        if r < 0 and not allow_negative:
            raise ValueError(f"cannot use {value!r}: negative value not allowed here")
        return <int64_t>r
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return _parse_text(value, precision, allow_negative)
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        big = value * 10 ** precision
        if not (-(2**63) < big < 2**63):
            raise ValueError(f"cannot use {value!r} at precision {precision}: out of the int64 range")
        if big < 0 and not allow_negative:
            raise ValueError(f"cannot use {value!r}: negative value not allowed here")
        return big
    if isinstance(value, _pydecimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot use {value!r} at precision {precision}: NaN and infinity are not prices or sizes")
        return _parse_text(str(value), precision, allow_negative)
    raise TypeError(f"expected str, bytes, int, float or Decimal, got {type(value).__name__}: {value!r}")


def parse_decimal(text, int precision, *, bint allow_negative=True):
    """Exact decimal text (str or bytes) -> int64 raw at `precision`. Raises ValueError naming the input."""
    _check_precision(precision)
    return _parse_text(text, precision, allow_negative)


def format_decimal(int64_t raw, int precision):
    """int64 raw at `precision` -> exact decimal text with exactly `precision` decimals."""
    cdef char buf[48]
    cdef Py_ssize_t n
    _check_precision(precision)
    n = format_fixed(raw, precision, buf)
    return buf[:n].decode("ascii")


def to_raw(value, int precision, *, bint allow_negative=True):
    """A user value (str, bytes, int, float, Decimal) -> int64 raw at `precision`, exactly or ValueError."""
    return value_to_raw(value, precision, allow_negative)


def raw_to_float(int64_t raw, int precision):
    """int64 raw at `precision` -> float (correctly rounded while |raw| < 2**53)."""
    _check_precision(precision)
    return ex_raw_to_f64(raw, precision)
