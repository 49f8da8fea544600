"""Plain-Python oracle for extrema's exact decimal parsing, on the standard library's `decimal`.

It states the rules in the most direct way: the text must be a finite decimal number in plain or
exponent notation; value * 10**precision must be an integer that fits in int64.
"""
import re
from decimal import Decimal, localcontext

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_NON_FINITE = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE)


def reference_parse(text: str, precision: int, allow_negative: bool = True) -> int:
    """Raise ValueError with a reason keyword, or return the raw integer."""
    if text == "":
        raise ValueError("empty")
    if _NON_FINITE.match(text):
        raise ValueError("NaN")
    if not _NUMBER.match(text):
        raise ValueError("not a decimal")
    with localcontext() as ctx:
        ctx.prec = 100_000
        ctx.Emax = 10**9
        ctx.Emin = -(10**9)
        mantissa, _, exp = text.lower().partition("e")
        if exp and abs(int(exp)) > 5000:          # far beyond int64 either way
            value = Decimal(0) if Decimal(mantissa) == 0 else None
            if value is None:
                raise ValueError("overflow" if int(exp) > 0 else "too many decimals")
        else:
            value = Decimal(text)
        scaled = value.scaleb(precision)
        if scaled != scaled.to_integral_value():
            raise ValueError("too many decimals")
        raw = int(scaled)
    if not INT64_MIN < raw <= INT64_MAX:
        raise ValueError("overflow")
    if raw < 0 and not allow_negative:
        raise ValueError("negative")
    return raw


def reference_format(raw: int, precision: int) -> str:
    sign = "-" if raw < 0 else ""
    digits = str(abs(raw)).rjust(precision + 1, "0")
    if precision == 0:
        return sign + digits
    return f"{sign}{digits[:-precision]}.{digits[-precision:]}"
