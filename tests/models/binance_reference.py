"""Plain-Python reference of the Binance wire codec (extrema._core.binance), for differential tests.

It reads a frame with `json` and every number with `decimal`, and produces the records the compiled
decoder must produce, as plain tuples, following the mapping written in binance.pyx's docstring.
Nothing here imports extrema (numbers go through the fixed-point oracle, models/fixedpoint_reference.py):
instruments, client order ids and asset ids come in as plain data /
callables, so the model stays an independent statement of the mapping.

Records are 10-tuples (kind, flags, instrument_id, ts_exchange, ts_local, sequence, price, quantity,
aux0, aux1); a continuation slot is (15, 1, instrument_id, p0, p1, ..., p6), i.e. the same 10 fields.
A frame that must give no records raises Drop(reason) with the DropReason name; control frames,
ignored events and open klines return an empty record list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable

from models.fixedpoint_reference import reference_parse

INT64_MAX = 2**63 - 1

KIND_BOOK_DELTA, KIND_TRADE, KIND_QUOTE, KIND_BOOK_RESET, KIND_CANDLE = 1, 2, 3, 4, 5
KIND_ORDER_UPDATE, KIND_FILL, KIND_MARK_PRICE, KIND_BALANCE, KIND_POSITION = 6, 7, 10, 11, 12
KIND_CONTINUATION = 15
FLAG_ASK, FLAG_SNAPSHOT, FLAG_LAST, FLAG_MAKER = 0x1, 0x2, 0x4, 0x10
ONE_CONTINUATION = 1 << 12
ASSET_PRECISION = RATE_PRECISION = 8

# Binance's status words onto extrema's order states (types.pxd): NEW is ACCEPTED, PENDING_NEW SUBMITTED...
ORDER_STATUS = {"PENDING_NEW": 1, "NEW": 2, "PARTIALLY_FILLED": 3, "FILLED": 4, "PENDING_CANCEL": 8,
                "CANCELED": 5, "REJECTED": 6, "EXPIRED": 7, "EXPIRED_IN_MATCH": 7, "NEW_INSURANCE": 2,
                "NEW_ADL": 2}
STATUS_UNKNOWN = 10
ORDER_TYPE_COMMON = {"LIMIT": 2, "MARKET": 1, "LIMIT_MAKER": 7, "STOP_LOSS": 3, "STOP_LOSS_LIMIT": 4,
                     "STOP_MARKET": 3, "STOP": 4, "TAKE_PROFIT_LIMIT": 6, "TAKE_PROFIT_MARKET": 5,
                     "TRAILING_STOP_MARKET": 8, "LIQUIDATION": 9}
TIF = {"GTC": 1, "IOC": 2, "FOK": 3, "GTX": 4, "GTD": 5, "RPI": 6}
EXEC = {"NEW": 1, "CANCELED": 2, "REPLACED": 3, "REJECTED": 4, "TRADE": 5, "EXPIRED": 6,
        "TRADE_PREVENTION": 7, "CALCULATED": 8, "AMENDMENT": 9}
ORDER_REASON = {"NONE": 0, "INSUFFICIENT_BALANCE": 2, "INSUFFICIENT_BALANCES": 2, "SELF_TRADE_PREVENTION": 3,
                "GTX_ORDER_REJECT": 4, "ORDER_WOULD_IMMEDIATELY_MATCH": 4, "PRICE_QTY_EXCEED_HARD_LIMITS": 5,
                "UNKNOWN_ORDER": 6, "DUPLICATE_ORDER": 7, "MARKET_CLOSED": 8, "INSUFFICIENT_LIQUIDITY": 9}
ACCOUNT_REASON = {"DEPOSIT": 2, "WITHDRAW": 3, "ORDER": 4, "FUNDING_FEE": 5, "WITHDRAW_REJECT": 6,
                  "ADJUSTMENT": 7, "INSURANCE_CLEAR": 8, "ADMIN_DEPOSIT": 9, "ADMIN_WITHDRAW": 10,
                  "MARGIN_TRANSFER": 11, "MARGIN_TYPE_CHANGE": 12, "ASSET_TRANSFER": 13,
                  "OPTIONS_PREMIUM_FEE": 14, "OPTIONS_SETTLE_PROFIT": 15, "AUTO_EXCHANGE": 16,
                  "COIN_SWAP_DEPOSIT": 17, "COIN_SWAP_WITHDRAW": 18}
POSITION_SIDE = {"BOTH": 0, "LONG": 1, "SHORT": 2}
MARGIN_TYPE = {"cross": 0, "isolated": 1}

EVENTS = {"depthUpdate": "DEPTH_UPDATE", "bookTicker": "BOOK_TICKER", "aggTrade": "AGG_TRADE",
          "trade": "TRADE", "kline": "KLINE", "markPriceUpdate": "MARK_PRICE",
          "executionReport": "EXECUTION_REPORT", "ORDER_TRADE_UPDATE": "ORDER_TRADE_UPDATE",
          "outboundAccountPosition": "ACCOUNT_POSITION", "ACCOUNT_UPDATE": "ACCOUNT_UPDATE",
          "listenKeyExpired": "LISTEN_KEY_EXPIRED", "serverShutdown": "SERVER_SHUTDOWN",
          "eventStreamTerminated": "STREAM_TERMINATED", "ALGO_UPDATE": "ALGO_UPDATE"}
# USD-M algo statuses -> OrderStatus (FINISHED: FILLED when aq reached q, else CANCELLED)
ALGO_STATUS = {"NEW": 2, "TRIGGERING": 2, "TRIGGERED": 2, "FINISHED": 4, "CANCELED": 5, "REJECTED": 6,
               "EXPIRED": 7}


class Drop(Exception):
    """The frame gives no records; args[0] is the DropReason name."""

    @property
    def reason(self) -> str:
        return self.args[0]


@dataclass
class Result:
    event: str
    records: list = field(default_factory=list)
    instrument_id: int = 0
    first_update_id: int = 0
    final_update_id: int = 0
    prev_final_update_id: int = 0
    changes: int = 0
    request_id: int = -1
    error_code: int = 0
    error_text: str | None = None


# ------------------------------------------------------------------------------------------ numbers

_REASONS = {"empty": "BAD_DECIMAL", "not a decimal": "BAD_DECIMAL", "NaN": "NOT_FINITE",
            "too many decimals": "TOO_PRECISE", "overflow": "OVERFLOW", "negative": "NEGATIVE"}


def exact(text, precision: int, allow_negative: bool) -> int:
    """text * 10**precision as an int, exactly (the fixed-point oracle's rules), or Drop."""
    if not isinstance(text, str):
        raise Drop("BAD_FIELD")
    try:
        return reference_parse(text, precision, allow_negative)
    except ValueError as e:
        raise Drop(_REASONS[e.args[0]]) from None


def rounded(text, precision: int, allow_negative: bool) -> int:
    """text * 10**precision rounded half away from zero (averages), or Drop. Plain notation only:
    text in exponent notation is taken exactly or not at all."""
    try:
        return exact(text, precision, allow_negative)
    except Drop as drop:
        if drop.reason != "TOO_PRECISE" or "e" in text.lower() or "." not in text:
            raise
    decimals = len(text.partition(".")[2].rstrip("0"))
    if decimals > 18:
        raise Drop("TOO_PRECISE")
    exact(text, decimals, allow_negative)          # the same overflow / sign checks at full precision
    return int(Decimal(text).scaleb(precision).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def quote_amount(text: str, precision: int) -> int:
    """A quote amount at price + size precision (may pass int64): exact, or rounded half up when the
    text is finer; Python ints do not overflow."""
    if not isinstance(text, str):
        raise Drop("BAD_FIELD")
    exact(text, 0 if "." not in text and "e" not in text.lower() else min(18, _decimals(text)), False)
    if "e" in text.lower():
        return rounded(text, min(precision, 18), False) * 10 ** max(0, precision - 18)
    if _decimals(text) > precision or _decimals(text) > 18:
        return rounded(text, min(precision, 18), False) * 10 ** max(0, precision - 18)
    return int(Decimal(text).scaleb(precision))


def _decimals(text: str) -> int:
    return len(text.partition(".")[2].rstrip("0")) if "e" not in text.lower() else 0


def optional(obj: dict, key: str, precision: int, allow_negative: bool, round_it: bool = False) -> int:
    """A decimal that may be absent, null or "" (-> 0)."""
    value = obj.get(key)
    if value is None or value == "":
        return 0
    if not isinstance(value, str):
        raise Drop("BAD_FIELD")
    return rounded(value, precision, allow_negative) if round_it else exact(value, precision, allow_negative)


def need(obj: dict, key: str, kind):
    if key not in obj:
        raise Drop("MISSING_FIELD")
    value = obj[key]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value <= INT64_MAX:
            raise Drop("BAD_FIELD")
    elif kind is bool:
        if not isinstance(value, bool):
            raise Drop("BAD_FIELD")
    elif not isinstance(value, kind):
        raise Drop("BAD_FIELD")
    return value


def opt_int(obj: dict, key: str, default: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value <= INT64_MAX:
        return default
    return value


# ------------------------------------------------------------------------------------------ decoder

class ReferenceDecoder:
    """market: "spot" or "usdm". instruments: {venue symbol: (instrument id, price precision, size
    precision)}. client_id(text) -> int and asset_id(code) -> int give the ids the records carry."""

    def __init__(self, market: str, instruments: dict, client_id: Callable[[str], int],
                 asset_id: Callable[[str], int], time_mul: int = 1000):
        assert market in ("spot", "usdm")
        self.usdm = market == "usdm"
        self.instruments = instruments
        self.client_id = client_id
        self.asset_id = asset_id
        self.mul = time_mul

    def _instrument(self, obj: dict, key: str = "s"):
        symbol = need(obj, key, str)
        found = self.instruments.get(symbol)
        if found is None:
            raise Drop("UNKNOWN_SYMBOL")
        return found

    def _time(self, obj: dict, key: str) -> int:
        return opt_int(obj, key, 0) * self.mul if isinstance(obj.get(key), int) and not isinstance(obj.get(key), bool) else 0

    # ---- frames -----------------------------------------------------------------------------------

    def decode(self, raw, ts_local: int) -> Result:
        if len(raw) == 0:
            raise Drop("EMPTY")
        try:
            frame = json.loads(raw, object_pairs_hook=_Obj.from_pairs)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Drop("MALFORMED_JSON") from None
        if not isinstance(frame, dict):
            raise Drop("NOT_AN_OBJECT")
        stream = frame.get("stream")
        wrapper = [k for k in ("data", "event") if isinstance(frame.get(k), dict)]
        if wrapper:
            if len(wrapper) > 1 or any(k not in ("stream", "subscriptionId", wrapper[0]) for k in frame):
                raise Drop("MALFORMED_JSON")
            if sum(1 for k, v in frame.pairs if k in ("data", "event") and isinstance(v, dict)) > 1:
                raise Drop("MALFORMED_JSON")
            payload = frame[wrapper[0]]
        else:
            payload = frame
        # The decoder reads one bids list, one asks list and one nested object per event: a frame with two
        # (duplicate keys, or both "b" and "bids") is not a Binance frame, where json would keep the last.
        pairs = payload.pairs
        if (sum(1 for k, v in pairs if k in ("b", "bids") and isinstance(v, list)) > 1
                or sum(1 for k, v in pairs if k in ("a", "asks") and isinstance(v, list)) > 1
                or sum(1 for k, v in pairs if k in ("k", "o", "a", "error") and isinstance(v, dict)) > 1):
            raise Drop("MALFORMED_JSON")
        e = payload.get("e")
        if e is not None:
            if not isinstance(e, str):
                raise Drop("BAD_FIELD")
            event = EVENTS.get(e, "IGNORED")
        elif "lastUpdateId" in payload:
            event = "DEPTH_SNAPSHOT"
        elif all(k in payload for k in ("u", "s", "b", "a")):
            event = "BOOK_TICKER"
        elif "error" in payload or ("code" in payload and "msg" in payload):
            event = "ERROR"
        elif "result" in payload or "id" in payload:
            event = "CONTROL"
        else:
            raise Drop("MISSING_FIELD")
        partial = isinstance(stream, str) and _partial_depth(stream)
        result = Result(event)
        if event in ("DEPTH_UPDATE", "DEPTH_SNAPSHOT") and partial:
            result.event = "IGNORED"
            return result
        handler = {
            "DEPTH_UPDATE": self._depth, "TRADE": self._trade, "AGG_TRADE": self._trade,
            "BOOK_TICKER": self._quote, "KLINE": self._kline, "MARK_PRICE": self._mark,
            "EXECUTION_REPORT": self._order, "ORDER_TRADE_UPDATE": self._order,
            "ACCOUNT_POSITION": self._account, "ACCOUNT_UPDATE": self._account, "ALGO_UPDATE": self._algo,
        }.get(event)
        if handler is not None:
            handler(payload, ts_local, result)
        elif event == "DEPTH_SNAPSHOT":
            raise Drop("NO_INSTRUMENT")
        elif event == "ERROR":
            err = payload.get("error")
            src = err if isinstance(err, dict) else payload
            result.error_code = opt_int(src, "code", 0)
            result.request_id = opt_int(payload, "id", -1)
            msg = src.get("msg") if isinstance(src.get("msg"), str) else (err if isinstance(err, str) else None)
            result.error_text = msg
        elif event == "CONTROL":
            result.request_id = opt_int(payload, "id", -1)
        return result

    def decode_snapshot(self, raw, instrument: tuple, ts_local: int) -> Result:
        body = json.loads(raw)
        iid, pp, sp = instrument
        result = Result("DEPTH_SNAPSHOT", instrument_id=iid)
        last = need(body, "lastUpdateId", int)
        result.first_update_id = result.final_update_id = last
        bids, asks = _levels(body, "bids"), _levels(body, "asks")
        ts = self._time(body, "T") or self._time(body, "E") or ts_local
        changes = [(0, p, q) for p, q in bids] + [(FLAG_ASK, p, q) for p, q in asks]
        result.changes = len(changes)
        if not changes:
            result.records = [(KIND_BOOK_RESET, 0, iid, ts, ts_local, last, 0, 0, 0, 0)]
            return result
        for i, (side, p, q) in enumerate(changes):
            flags = FLAG_SNAPSHOT | side | (FLAG_LAST if i == len(changes) - 1 else 0)
            result.records.append((KIND_BOOK_DELTA, flags, iid, ts, ts_local, last, exact(p, pp, False),
                                   exact(q, sp, False), 0, 0))
        return result

    # ---- events -----------------------------------------------------------------------------------

    def _depth(self, d, ts_local, result):
        first = need(d, "U", int)
        final = need(d, "u", int)
        prev = need(d, "pu", int) if self.usdm else 0
        result.first_update_id, result.final_update_id, result.prev_final_update_id = first, final, prev
        if "b" not in d or "a" not in d:
            raise Drop("MISSING_FIELD")
        bids, asks = _levels(d, "b"), _levels(d, "a")
        iid, pp, sp = self._instrument(d)
        result.instrument_id = iid
        ts = self._time(d, "T") or self._time(d, "E")
        changes = [(0, p, q) for p, q in bids] + [(FLAG_ASK, p, q) for p, q in asks]
        result.changes = len(changes)
        for i, (side, p, q) in enumerate(changes):
            flags = side | (FLAG_LAST if i == len(changes) - 1 else 0)
            result.records.append((KIND_BOOK_DELTA, flags, iid, ts, ts_local, final, exact(p, pp, False),
                                   exact(q, sp, False), first, prev))

    def _trade(self, d, ts_local, result):
        if result.event == "TRADE":
            seq, first, last = need(d, "t", int), 0, 0
        else:
            seq, first, last = need(d, "a", int), need(d, "f", int), need(d, "l", int)
        buyer_maker = need(d, "m", bool)
        iid, pp, sp = self._instrument(d)
        result.instrument_id = iid
        price, qty = exact(need(d, "p", str), pp, False), exact(need(d, "q", str), sp, False)
        ts = self._time(d, "T") or self._time(d, "E")
        result.records.append((KIND_TRADE, FLAG_ASK if buyer_maker else 0, iid, ts, ts_local, seq, price, qty,
                               first, last))

    def _quote(self, d, ts_local, result):
        seq = need(d, "u", int)
        iid, pp, sp = self._instrument(d)
        result.instrument_id = iid
        values = [exact(need(d, k, str), pp if k in "ba" else sp, False) for k in ("b", "B", "a", "A")]
        result.final_update_id = seq
        ts = self._time(d, "T") or self._time(d, "E") or ts_local
        result.records.append((KIND_QUOTE, 0, iid, ts, ts_local, seq, *values))

    def _kline(self, d, ts_local, result):
        k = d.get("k")
        if not isinstance(k, dict):
            raise Drop("MISSING_FIELD" if "k" not in d else "BAD_FIELD")
        closed = need(k, "x", bool)
        iid, pp, sp = self._instrument(k if "s" in k else d)
        result.instrument_id = iid
        if not closed:
            return
        open_t, close_t, trades = need(k, "t", int), need(k, "T", int), need(k, "n", int)
        o, h, low, c = (exact(need(k, key, str), pp, False) for key in ("o", "h", "l", "c"))
        v, taker_buy = exact(need(k, "v", str), sp, False), exact(need(k, "V", str), sp, False)
        if taker_buy > v:
            raise Drop("INCONSISTENT")
        notional = quote_amount(need(k, "q", str), pp + sp)
        if v > 0:
            q, r = divmod(notional, v)
            vwap = min(q + (1 if 2 * r >= v else 0), INT64_MAX)
        else:
            vwap = c
        result.records += [
            (KIND_CANDLE, ONE_CONTINUATION, iid, open_t * self.mul, ts_local, trades, o, v, h, low),
            (KIND_CONTINUATION, 1, iid, c, vwap, taker_buy, v - taker_buy, (close_t + 1) * self.mul,
             min(notional, INT64_MAX), 0)]

    def _mark(self, d, ts_local, result):
        iid, pp, sp = self._instrument(d)
        result.instrument_id = iid
        mark = rounded(need(d, "p", str), pp, False)
        index = optional(d, "i", pp, False, True)
        settle = optional(d, "P", pp, False, True)
        rate = optional(d, "r", RATE_PRECISION, True, True)
        next_funding = need(d, "T", int)
        result.records.append((KIND_MARK_PRICE, 0, iid, self._time(d, "E"), ts_local, next_funding * self.mul,
                               mark, settle, index, rate))

    def _order_fields(self, o, usdm, algo, result):
        """What order and algo-order reports name alike (the compiled decoder's _order_fields): instrument,
        side, status (an algo order's when `algo`), order type."""
        iid, pp, sp = self._instrument(o)
        result.instrument_id = iid
        side = need(o, "S", str)
        if side not in ("BUY", "SELL"):
            raise Drop("BAD_FIELD")
        status = (ALGO_STATUS if algo else ORDER_STATUS).get(need(o, "X", str), STATUS_UNKNOWN)
        otype_text = need(o, "o", str)
        otype = (6 if usdm else 5) if otype_text == "TAKE_PROFIT" else ORDER_TYPE_COMMON.get(otype_text, 0)
        return iid, pp, sp, side, status, otype

    def _algo(self, d, ts_local, result):
        o = d.get("o")
        if not isinstance(o, dict):
            raise Drop("MISSING_FIELD" if "o" not in d else "BAD_FIELD")
        iid, pp, sp, side, status, otype = self._order_fields(o, True, True, result)
        tif = TIF.get(o["f"], 0) if isinstance(o.get("f"), str) else 1
        algo_id = need(o, "aid", int)
        qty = exact(need(o, "q", str), sp, False)
        price = optional(o, "p", pp, False)
        cum = optional(o, "aq", sp, False)
        avg = optional(o, "ap", pp, False, True)
        trigger = optional(o, "tp", pp, False)
        actual = o.get("ai")
        actual = actual if isinstance(actual, int) and not isinstance(actual, bool) else optional(o, "ai", 0, False)
        if status == 4 and cum < qty:
            status = 5
        ex = {2: EXEC["NEW"], 4: EXEC["TRADE"], 5: EXEC["CANCELED"], 6: EXEC["REJECTED"], 7: EXEC["EXPIRED"]}.get(status, 0)
        reason = 1 if status == 6 else 0
        text = o.get("caid")
        client = self.client_id(text) if isinstance(text, str) and text else 0
        ts = self._time(d, "T") or self._time(d, "E")
        sell = FLAG_ASK if side == "SELL" else 0
        result.records += [
            (KIND_ORDER_UPDATE, sell | ONE_CONTINUATION, iid, ts, ts_local, client, price, qty, cum,
             actual if actual > 0 else algo_id),
            (KIND_CONTINUATION, 1, iid, status, otype, tif, avg, trigger, qty - cum, (ex << 16) | reason)]

    def _order(self, d, ts_local, result):
        usdm = result.event == "ORDER_TRADE_UPDATE"
        if usdm:
            o = d.get("o")
            if not isinstance(o, dict):
                raise Drop("MISSING_FIELD" if "o" not in d else "BAD_FIELD")
        else:
            o = d
        iid, pp, sp, side, status, otype = self._order_fields(o, usdm, False, result)
        tif = TIF.get(need(o, "f", str), 0)
        ex = EXEC.get(need(o, "x", str), 0)
        reason = 0
        if not usdm and isinstance(o.get("r"), str):
            reason = ORDER_REASON.get(o["r"], 1)
        order_id = need(o, "i", int)
        qty = exact(need(o, "q", str), sp, False)
        price = optional(o, "p", pp, False)
        cum = exact(need(o, "z", str), sp, False)
        last_qty = optional(o, "l", sp, False)
        last_px = optional(o, "L", pp, False)
        stop = optional(o, "sp" if usdm else "P", pp, False)
        fee = optional(o, "n", ASSET_PRECISION, True)
        avg = realized = 0
        if usdm:
            avg = optional(o, "ap", pp, False, True)
            realized = optional(o, "rp", ASSET_PRECISION, True, True)
        elif cum > 0 and "Z" in o:
            quote = o["Z"]
            if not isinstance(quote, str):
                raise Drop("BAD_FIELD")
            num = quote_amount(quote, pp + sp)
            q, r = divmod(num, cum)
            avg = q + (1 if 2 * r >= cum else 0)
            if avg > INT64_MAX:
                raise Drop("OVERFLOW")
        trade_id = opt_int(o, "t", 0)
        maker = o.get("m") is True
        fill = ex in (EXEC["TRADE"], EXEC["CALCULATED"]) and last_qty > 0
        original = o.get("C")
        if isinstance(original, str) and original:
            client = self.client_id(original)
        else:
            text = o.get("c")
            client = self.client_id(text) if isinstance(text, str) and text else 0
        ts = self._time(o, "T") or self._time(d, "T") or self._time(d, "E")
        sell = FLAG_ASK if side == "SELL" else 0
        result.records += [
            (KIND_ORDER_UPDATE, sell | ONE_CONTINUATION, iid, ts, ts_local, client, price, qty, cum, order_id),
            (KIND_CONTINUATION, 1, iid, status, otype, tif, avg, stop, qty - cum, (ex << 16) | reason)]
        if fill:
            fee_asset = self.asset_id(o["N"]) if isinstance(o.get("N"), str) and o["N"] else 0
            result.records += [
                (KIND_FILL, sell | (FLAG_MAKER if maker else 0) | ONE_CONTINUATION, iid, ts, ts_local, trade_id,
                 last_px, last_qty, client, fee),
                (KIND_CONTINUATION, 1, iid, order_id, fee_asset, 0, realized, 0, 0, 0)]

    def _account(self, d, ts_local, result):
        if result.event == "ACCOUNT_UPDATE":
            a = d.get("a")
            if not isinstance(a, dict):
                raise Drop("MISSING_FIELD" if "a" not in d else "BAD_FIELD")
            m = a.get("m")
            reason = ACCOUNT_REASON.get(m, 1) if isinstance(m, str) else 0
            ts = self._time(d, "T") or self._time(d, "E")
            balances, positions = a.get("B", []), a.get("P", [])
            wallet, cross, change = "wb", "cw", "bc"
        else:
            if "B" not in d:
                raise Drop("MISSING_FIELD")
            reason = 0
            ts = self._time(d, "u") or self._time(d, "E")
            balances, positions = d["B"], []
            wallet, cross, change = "f", "l", None
        if not isinstance(balances, list) or not isinstance(positions, list):
            raise Drop("BAD_FIELD")
        if not all(isinstance(x, dict) for x in balances + positions):
            raise Drop("BAD_FIELD")
        kept = []
        for p in positions:
            if not isinstance(p.get("s"), str):
                raise Drop("MISSING_FIELD")
            found = self.instruments.get(p["s"])
            if found is not None:
                kept.append((p, found))
        records = []
        for i, b in enumerate(balances):
            asset = b.get("a")
            if not isinstance(asset, str) or not asset:
                raise Drop("MISSING_FIELD")
            v0 = _entry(b, wallet, ASSET_PRECISION, True, False, True)
            v1 = _entry(b, cross, ASSET_PRECISION, True, False, result.event == "ACCOUNT_POSITION")
            v2 = _entry(b, change, ASSET_PRECISION, True, False, False) if change else 0
            records.append([KIND_BALANCE, FLAG_LAST if i == len(balances) - 1 else 0, 0, ts, ts_local,
                            self.asset_id(asset), v0, v1, v2, reason])
        last_position = None
        for p, (iid, pp, sp) in kept:
            amount = _entry(p, "pa", sp, True, False, True)
            entry = _entry(p, "ep", pp, False, True, True)
            breakeven = _entry(p, "bep", pp, False, True, False)
            unreal = _entry(p, "up", ASSET_PRECISION, True, True, False)
            realized = _entry(p, "cr", ASSET_PRECISION, True, True, False)
            isolated = _entry(p, "iw", ASSET_PRECISION, True, True, False)
            side = POSITION_SIDE.get(p.get("ps"), 0) if isinstance(p.get("ps"), str) else 0
            margin = MARGIN_TYPE.get(p.get("mt"), 0) if isinstance(p.get("mt"), str) else 0
            last_position = len(records)
            records.append([KIND_POSITION, ONE_CONTINUATION, iid, ts, ts_local, 0, entry, amount, unreal, realized])
            records.append([KIND_CONTINUATION, 1, iid, breakeven, side, margin, isolated, reason, 0, 0])
        if last_position is not None:
            records[last_position][1] |= FLAG_LAST
        result.records = [tuple(r) for r in records]


def _entry(obj: dict, key: str, precision: int, allow_negative: bool, round_it: bool, required: bool) -> int:
    value = obj.get(key)
    if not isinstance(value, str):
        if required:
            raise Drop("MISSING_FIELD")
        return 0
    return rounded(value, precision, allow_negative) if round_it else exact(value, precision, allow_negative)


class _Obj(dict):
    """A JSON object that remembers its key / value pairs in order, duplicates included."""
    pairs: list

    @classmethod
    def from_pairs(cls, pairs):
        obj = cls(pairs)
        obj.pairs = pairs
        return obj


def _levels(d: dict, key: str):
    if key not in d:
        raise Drop("MISSING_FIELD")
    levels = d[key]
    if not isinstance(levels, list) or any(
            not isinstance(lv, list) or len(lv) != 2 or not all(isinstance(x, str) for x in lv) for lv in levels):
        raise Drop("BAD_FIELD")
    return levels


def _partial_depth(stream: str) -> bool:
    at = stream.find("@depth")
    while at >= 0:
        if at + 6 < len(stream) and stream[at + 6].isdigit():
            return True
        at = stream.find("@depth", at + 1)
    return False
