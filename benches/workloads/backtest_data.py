"""One synthetic L2 + trade stream for the backtest benchmark, and its conversion to each framework's input.

The stream is generated once (seeded) as plain numpy columns (`MarketStream`) and then converted to:

* extrema: a RECORD_DTYPE array (BOOK_DELTA with SNAPSHOT / LAST flags, TRADE)         -> `to_extrema`
* NautilusTrader: OrderBookDeltas (one per venue message) and TradeTick objects        -> `to_nautilus`
* hftbacktest: its `event_dtype` array (DEPTH_EVENT / TRADE_EVENT with EXCH | LOCAL flags) -> `to_hftbacktest`

and `back_from_*` turn each converted form back into the canonical columns, so `check_conversions` can
prove that the three frameworks are fed the same events (same order, sides, prices, sizes, timestamps).

The market (one instrument, tick 0.01, lot 0.001, mid around 2,000.00):
* a contiguous ladder of DEPTH levels per side (every tick occupied), sizes drawn per level;
* each venue message is one of: a size change at a level near the touch (rank drawn geometrically, as
  on a real venue most activity is at the best few levels), a trade at the touch followed by the depth
  message that shows its effect (the touch shrinks, or is consumed and the next level becomes the best),
  a one-tick shift of the whole book (the mid moves: the old touch goes, a new level appears on the
  other side, the far ends are trimmed / extended), or, while the spread is wider than one tick, an
  order that improves the touch inside the spread;
* exchange timestamps advance by an exponential gap per message (mean 500 µs); the local timestamp is
  the exchange's plus a feed latency (800 µs + exponential jitter, mean 200 µs), made nondecreasing
  (records are delivered in arrival order).

Nothing here imports extrema, NautilusTrader or hftbacktest at module level: the generator runs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRICE_PRECISION = 2                   # tick 0.01
SIZE_PRECISION = 3                    # lot 0.001
TICK = "0.01"
LOT = "0.001"
INSTRUMENT = "ETH_USDT"               # extrema name; NautilusTrader: ETHUSDT.SIM; hftbacktest: asset 0
T0_US = 1_767_225_600_000_000         # 2026-01-01T00:00:00Z

DEPTH, TRADE = 0, 1                   # canonical kinds
BID, ASK = 0, 1                       # depth side; for a trade: BID = buyer was the aggressor, ASK = seller

LEVELS = 20                           # levels per side the ladder keeps


@dataclass
class MarketStream:
    """The canonical event stream: one row per market event (a level update or a trade)."""
    kind: np.ndarray          # uint8 DEPTH / TRADE
    side: np.ndarray          # uint8 BID / ASK (trades: the aggressor's side)
    price: np.ndarray         # int64 price in ticks (= raw at PRICE_PRECISION)
    qty: np.ndarray           # int64 size in lots (= raw at SIZE_PRECISION); 0 deletes a level
    ts_exchange: np.ndarray   # int64 µs
    ts_local: np.ndarray      # int64 µs, nondecreasing
    last: np.ndarray          # bool: the event ends its venue message
    snapshot: np.ndarray      # bool: part of the initial snapshot
    update_id: np.ndarray     # int64: the venue message's id (increasing)

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def n_trades(self) -> int:
        return int((self.kind == TRADE).sum())

    @property
    def n_messages(self) -> int:
        return int(self.last.sum())

    def describe(self) -> str:
        span_s = (int(self.ts_local[-1]) - int(self.ts_local[0])) / 1e6
        lo, hi = int(self.price.min()), int(self.price.max())
        return (f"{len(self):,} events ({self.n_trades:,} trades, {len(self) - self.n_trades:,} level updates, "
                f"{self.n_messages:,} venue messages) over {span_s:,.0f} s of data; prices "
                f"{lo / 100:.2f}..{hi / 100:.2f}")


def generate(n_events: int = 1_000_000, seed: int = 7) -> MarketStream:
    """The seeded stream of about `n_events` events (it stops at the first message boundary past n)."""
    rng = np.random.default_rng(seed)
    # Random draws in blocks (a Python loop consumes them: the book model must stay consistent).
    block = n_events + 1024
    u_kind = rng.random(block).tolist()
    u_side = rng.random(block).tolist()
    u_frac = rng.random(block).tolist()
    rank = np.minimum(rng.geometric(0.35, block) - 1, LEVELS - 1).tolist()
    sizes = np.maximum(1, np.round(rng.lognormal(np.log(400), 1.0, 4 * block))).astype(np.int64).tolist()
    gaps = np.maximum(1, rng.exponential(500.0, block)).astype(np.int64)
    jitter = (800 + rng.exponential(200.0, block)).astype(np.int64)

    kind, side, price, qty, msg = [], [], [], [], []
    bid0, ask0 = 200_000, 200_001     # best bid / best ask in ticks
    bids = [sizes[i] for i in range(LEVELS)]              # bids[r] rests at bid0 - r
    asks = [sizes[LEVELS + i] for i in range(LEVELS)]     # asks[r] rests at ask0 + r
    si = 2 * LEVELS

    def emit(k, s, p, q, m):
        kind.append(k)
        side.append(s)
        price.append(p)
        qty.append(q)
        msg.append(m)

    for r in range(LEVELS):                                   # the initial snapshot: message 0
        emit(DEPTH, BID, bid0 - r, bids[r], 0)
    for r in range(LEVELS):
        emit(DEPTH, ASK, ask0 + r, asks[r], 0)

    m = 0
    i = 0
    while len(kind) < n_events:
        m += 1
        i += 1
        u = u_kind[i]
        s = BID if u_side[i] < 0.5 else ASK
        spread = ask0 - bid0
        if spread > 1 and u < 0.35:
            # an order improves the touch inside the spread; the far end of that side is trimmed
            if s == BID:
                bid0 += 1
                bids.insert(0, sizes[si])
                emit(DEPTH, BID, bid0, bids[0], m)
                emit(DEPTH, BID, bid0 - LEVELS, 0, m)
                bids.pop()
            else:
                ask0 -= 1
                asks.insert(0, sizes[si])
                emit(DEPTH, ASK, ask0, asks[0], m)
                emit(DEPTH, ASK, ask0 + LEVELS, 0, m)
                asks.pop()
            si += 1
        elif u < 0.70:
            # a size change at a level near the touch
            r = rank[i]
            q = sizes[si]
            si += 1
            if s == BID:
                bids[r] = q
                emit(DEPTH, BID, bid0 - r, q, m)
            else:
                asks[r] = q
                emit(DEPTH, ASK, ask0 + r, q, m)
        elif u < 0.85:
            # a trade at the touch (s = the aggressor), then the depth message showing what it took
            book = asks if s == BID else bids
            touch = ask0 if s == BID else bid0
            q = max(1, int(book[0] * u_frac[i] * 1.25))
            if q >= book[0]:
                q = book[0]                                  # the level is consumed
                emit(TRADE, s, touch, q, m)
                m += 1
                book.pop(0)
                book.append(sizes[si])
                si += 1
                if s == BID:
                    emit(DEPTH, ASK, ask0, 0, m)
                    ask0 += 1
                    emit(DEPTH, ASK, ask0 + LEVELS - 1, asks[-1], m)
                else:
                    emit(DEPTH, BID, bid0, 0, m)
                    bid0 -= 1
                    emit(DEPTH, BID, bid0 - LEVELS + 1, bids[-1], m)
            else:
                emit(TRADE, s, touch, q, m)
                m += 1
                book[0] -= q
                emit(DEPTH, ASK if s == BID else BID, touch, book[0], m)
        else:
            # the whole book shifts one tick (s == BID: up, ASK: down)
            if s == BID:
                emit(DEPTH, ASK, ask0, 0, m)                 # the best ask goes
                asks.pop(0)
                asks.append(sizes[si])
                emit(DEPTH, ASK, ask0 + LEVELS, asks[-1], m)  # a level appears at the far end
                bid0 += 1
                ask0 += 1
                bids.insert(0, sizes[si + 1])
                emit(DEPTH, BID, bid0, bids[0], m)           # a new best bid
                emit(DEPTH, BID, bid0 - LEVELS, 0, m)        # the far bid is trimmed
                bids.pop()
            else:
                emit(DEPTH, BID, bid0, 0, m)
                bids.pop(0)
                bids.append(sizes[si])
                emit(DEPTH, BID, bid0 - LEVELS, bids[-1], m)
                bid0 -= 1
                ask0 -= 1
                asks.insert(0, sizes[si + 1])
                emit(DEPTH, ASK, ask0, asks[0], m)
                emit(DEPTH, ASK, ask0 + LEVELS, 0, m)
                asks.pop()
            si += 2

    msg_a = np.asarray(msg, dtype=np.int64)
    n = len(msg_a)
    last = np.empty(n, dtype=bool)
    last[:-1] = msg_a[1:] != msg_a[:-1]
    last[-1] = True
    # timestamps per message: the snapshot at T0, then exponential gaps; a trade and the depth message
    # after it share the exchange time (gap index by message id keeps that simple: the depth message of a
    # trade gets a 1 µs later stamp at most, which no framework treats differently)
    n_msg = int(msg_a[-1]) + 1
    g = np.concatenate(([0], gaps[:n_msg - 1] if n_msg - 1 <= len(gaps) else
                        np.resize(gaps, n_msg - 1)))
    msg_ts = T0_US + np.cumsum(g)
    ts_exchange = msg_ts[msg_a]
    msg_local = np.maximum.accumulate(msg_ts + np.resize(jitter, n_msg))
    ts_local = msg_local[msg_a]
    snapshot = msg_a == 0
    return MarketStream(kind=np.asarray(kind, dtype=np.uint8), side=np.asarray(side, dtype=np.uint8),
                        price=np.asarray(price, dtype=np.int64), qty=np.asarray(qty, dtype=np.int64),
                        ts_exchange=ts_exchange.astype(np.int64), ts_local=ts_local.astype(np.int64),
                        last=last, snapshot=snapshot, update_id=msg_a + 1)


# ------------------------------------------------------------------------------------------- extrema

def to_extrema(stream: MarketStream, instrument_id: int) -> np.ndarray:
    """RECORD_DTYPE records: BOOK_DELTA (flags ASK / SNAPSHOT / LAST, sequence = message id) and TRADE
    (flags ASK when the seller was the aggressor, sequence = trade number)."""
    from extrema import RECORD_DTYPE, RecordFlag, RecordKind

    n = len(stream)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    is_trade = stream.kind == TRADE
    rec["kind"] = np.where(is_trade, int(RecordKind.TRADE), int(RecordKind.BOOK_DELTA))
    flags = np.where(stream.side == ASK, int(RecordFlag.ASK), 0)
    flags |= np.where(~is_trade & stream.snapshot, int(RecordFlag.SNAPSHOT), 0)
    flags |= np.where(~is_trade & stream.last, int(RecordFlag.LAST), 0)
    rec["flags"] = flags
    rec["instrument_id"] = instrument_id
    rec["ts_exchange"] = stream.ts_exchange
    rec["ts_local"] = stream.ts_local
    rec["sequence"] = np.where(is_trade, np.cumsum(is_trade), stream.update_id)
    rec["price"] = stream.price
    rec["quantity"] = stream.qty
    return rec


def back_from_extrema(rec: np.ndarray) -> dict:
    from extrema import RecordFlag, RecordKind

    is_trade = rec["kind"] == int(RecordKind.TRADE)
    return dict(kind=np.where(is_trade, TRADE, DEPTH), side=np.where(rec["flags"] & int(RecordFlag.ASK), ASK, BID),
                price=rec["price"].astype(np.int64), qty=rec["quantity"].astype(np.int64),
                ts_exchange=rec["ts_exchange"], ts_local=rec["ts_local"])


# ----------------------------------------------------------------------------------------- hftbacktest

def to_hftbacktest(stream: MarketStream) -> np.ndarray:
    """hftbacktest's event array (nanosecond timestamps, float prices / sizes). Every event is both an
    exchange and a local event (EXCH_EVENT | LOCAL_EVENT); BUY_EVENT / SELL_EVENT is the depth side, or
    the aggressor's side for a trade (as hftbacktest's own Binance converter sets it)."""
    from hftbacktest import BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT, TRADE_EVENT
    from hftbacktest.types import event_dtype

    n = len(stream)
    ev = np.zeros(n, dtype=event_dtype)
    base = np.where(stream.kind == TRADE, TRADE_EVENT, DEPTH_EVENT).astype(np.uint64)
    base |= np.uint64(EXCH_EVENT | LOCAL_EVENT)
    base |= np.where(stream.side == BID, BUY_EVENT, SELL_EVENT).astype(np.uint64)
    ev["ev"] = base
    ev["exch_ts"] = stream.ts_exchange * 1000
    ev["local_ts"] = stream.ts_local * 1000
    ev["px"] = stream.price / 10.0 ** PRICE_PRECISION
    ev["qty"] = stream.qty / 10.0 ** SIZE_PRECISION
    return ev


def back_from_hftbacktest(ev: np.ndarray) -> dict:
    from hftbacktest import BUY_EVENT, TRADE_EVENT

    kind_bits = ev["ev"] & np.uint64(0xFF)
    return dict(kind=np.where(kind_bits == TRADE_EVENT, TRADE, DEPTH),
                side=np.where(ev["ev"] & np.uint64(BUY_EVENT), BID, ASK),
                price=np.rint(ev["px"] * 10 ** PRICE_PRECISION).astype(np.int64),
                qty=np.rint(ev["qty"] * 10 ** SIZE_PRECISION).astype(np.int64),
                ts_exchange=ev["exch_ts"] // 1000, ts_local=ev["local_ts"] // 1000)


# ------------------------------------------------------------------------------------- NautilusTrader

NAUTILUS_VENUE = "SIM"
NAUTILUS_SYMBOL = "ETHUSDT"


def nautilus_instrument():
    """The NautilusTrader instrument with the same spec (tick 0.01, lot 0.001)."""
    from decimal import Decimal

    from nautilus_trader.model.currencies import ETH, USDT
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Price, Quantity

    iid = InstrumentId(Symbol(NAUTILUS_SYMBOL), Venue(NAUTILUS_VENUE))
    return CurrencyPair(instrument_id=iid, raw_symbol=Symbol(NAUTILUS_SYMBOL), base_currency=ETH, quote_currency=USDT,
                        price_precision=PRICE_PRECISION, size_precision=SIZE_PRECISION,
                        price_increment=Price.from_str(TICK), size_increment=Quantity.from_str(LOT),
                        lot_size=None, max_quantity=Quantity.from_str("10000"), min_quantity=Quantity.from_str(LOT),
                        max_notional=None, min_notional=None, max_price=Price.from_str("1000000"),
                        min_price=Price.from_str(TICK), margin_init=Decimal(0), margin_maint=Decimal(0),
                        maker_fee=Decimal(0), taker_fee=Decimal(0), ts_event=0, ts_init=0)


def to_nautilus(stream: MarketStream, instrument=None) -> list:
    """NautilusTrader data in arrival order: one OrderBookDeltas per venue message (as its adapters publish
    them: F_LAST on the final delta, F_SNAPSHOT on the snapshot's), a TradeTick per trade. A level update
    is BookAction.UPDATE (an upsert in an L2_MBP book) when the size is > 0, DELETE when it is 0, as
    NautilusTrader's own Binance adapter maps plain (price, size) updates. ts_event = exchange time,
    ts_init = local time, both in ns."""
    from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
    from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
    from nautilus_trader.model.identifiers import TradeId
    from nautilus_trader.model.objects import FIXED_PRECISION

    iid = (instrument or nautilus_instrument()).id
    pscale = 10 ** (FIXED_PRECISION - PRICE_PRECISION)
    sscale = 10 ** (FIXED_PRECISION - SIZE_PRECISION)
    f_last, f_snap = int(RecordFlag.F_LAST), int(RecordFlag.F_SNAPSHOT)
    sides = (OrderSide.BUY, OrderSide.SELL)
    aggressors = (AggressorSide.BUYER, AggressorSide.SELLER)
    upd, dele = BookAction.UPDATE, BookAction.DELETE
    mk_delta, mk_trade = OrderBookDelta.from_raw, TradeTick.from_raw

    out, pending = [], []
    n_trade = 0
    cols = zip(stream.kind.tolist(), stream.side.tolist(), stream.price.tolist(), stream.qty.tolist(),
               stream.ts_exchange.tolist(), stream.ts_local.tolist(), stream.last.tolist(),
               stream.snapshot.tolist(), stream.update_id.tolist())
    for k, s, p, q, te, tl, last, snap, uid in cols:
        if k == TRADE:
            n_trade += 1
            out.append(mk_trade(iid, p * pscale, PRICE_PRECISION, q * sscale, SIZE_PRECISION, aggressors[s],
                                TradeId(str(n_trade)), te * 1000, tl * 1000))
            continue
        flags = (f_last if last else 0) | (f_snap if snap else 0)
        pending.append(mk_delta(iid, upd if q else dele, sides[s], p * pscale, PRICE_PRECISION, q * sscale,
                                SIZE_PRECISION, 0, flags, uid, te * 1000, tl * 1000))
        if last:
            out.append(OrderBookDeltas(iid, pending))
            pending = []
    if pending:
        out.append(OrderBookDeltas(iid, pending))
    return out


def back_from_nautilus(data: list) -> dict:
    from nautilus_trader.model.data import TradeTick
    from nautilus_trader.model.enums import AggressorSide, OrderSide
    from nautilus_trader.model.objects import FIXED_PRECISION

    pscale = 10 ** (FIXED_PRECISION - PRICE_PRECISION)
    sscale = 10 ** (FIXED_PRECISION - SIZE_PRECISION)
    rows = []
    for d in data:
        if isinstance(d, TradeTick):
            rows.append((TRADE, BID if d.aggressor_side == AggressorSide.BUYER else ASK, d.price.raw // pscale,
                         d.size.raw // sscale, d.ts_event // 1000, d.ts_init // 1000))
        else:
            for x in d.deltas:
                rows.append((DEPTH, BID if x.order.side == OrderSide.BUY else ASK, x.order.price.raw // pscale,
                             x.order.size.raw // sscale, x.ts_event // 1000, x.ts_init // 1000))
    a = np.array(rows, dtype=np.int64).reshape(-1, 6)
    return dict(kind=a[:, 0], side=a[:, 1], price=a[:, 2], qty=a[:, 3], ts_exchange=a[:, 4], ts_local=a[:, 5])


# ---------------------------------------------------------------------------------------- the check

def canonical(stream: MarketStream) -> dict:
    return dict(kind=stream.kind, side=stream.side, price=stream.price, qty=stream.qty,
                ts_exchange=stream.ts_exchange, ts_local=stream.ts_local)


def compare(name: str, expected: dict, got: dict) -> list[str]:
    """Differences between two canonical column sets ([] when they carry the same events)."""
    problems = []
    n_exp, n_got = len(expected["kind"]), len(got["kind"])
    if n_exp != n_got:
        return [f"{name}: {n_got} events, expected {n_exp}"]
    for col in ("kind", "side", "price", "qty", "ts_exchange", "ts_local"):
        a = np.asarray(expected[col], dtype=np.int64)
        b = np.asarray(got[col], dtype=np.int64)
        bad = np.flatnonzero(a != b)
        if len(bad):
            i = int(bad[0])
            problems.append(f"{name}: column {col} differs at {len(bad)} events, first at {i}: "
                            f"{int(b[i])} != {int(a[i])}")
    return problems


def check_conversions(stream: MarketStream, *, extrema=None, nautilus=None, hftbacktest=None) -> list[str]:
    """Compare each converted form given with the canonical stream; returns the problems found."""
    exp = canonical(stream)
    problems = []
    if extrema is not None:
        problems += compare("extrema", exp, back_from_extrema(extrema))
    if nautilus is not None:
        problems += compare("nautilus", exp, back_from_nautilus(nautilus))
    if hftbacktest is not None:
        problems += compare("hftbacktest", exp, back_from_hftbacktest(hftbacktest))
    return problems
