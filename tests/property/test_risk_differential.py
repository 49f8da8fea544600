"""Differential test: ExecutionCore (compiled order table + portfolio + risk chain) against
tests/models/risk_reference.py's ReferenceCore.

A hypothesis state machine submits orders (every rule's inputs: off-tick prices, off-lot sizes, tiny
notionals, market / stop types, reduce-only), changes limits at run time (per strategy and global), moves
marks (explicit marks, quotes, trades), fills and closes orders, sends venue rejects, kills / releases,
trips / resets breakers and advances the clock (across days and rate-limit windows). Every submit must
get the same (rule, scope, value, limit) from both, and afterwards both hold the same positions, open
orders and equity.
"""
import math
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from extrema import InstrumentRegistry, Market
from extrema._core.execution import ExecutionCore
from models import risk_reference as R
from models.pnl_reference import Spec
from order_records import fill, order_update, quote, trade

T0 = 1_800_000_000_000_000
ALL = 65
SCOPES = (0, 1, None)


def build():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.05", "0.002", min_notional="0.5")      # id 1: pp 2, sp 3
    reg.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.01")                    # id 2: pp 1, sp 2
    core = ExecutionCore(reg, "fifo")
    specs = {1: Spec(2, 3, cash="spot", market=int(Market.BINANCE_SPOT), base="BTC", quote="USDT"),
             2: Spec(1, 2, cash="margin", market=int(Market.BINANCE_USDM), base="ETH", quote="USDT")}
    instruments = {1: R.Instrument(5, 2, 50, int(Market.BINANCE_SPOT)),
                   2: R.Instrument(1, 1, 0, int(Market.BINANCE_USDM))}
    ref = R.ReferenceCore(specs, instruments, "fifo")
    core.risk.set_rate_limit(Market.BINANCE_SPOT, 5, 1.0)
    core.risk._set_bucket_clock(Market.BINANCE_SPOT, T0)
    ref.risk.add_bucket(int(Market.BINANCE_SPOT), 5, 1.0, T0)
    return core, ref


def same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


class RiskMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.core, self.ref = build()
        self.now = T0
        self.next_id = 1
        self.trade_id = 1

    def _coid(self, owner):
        self.next_id += 1
        return (self.next_id << 6) | owner

    @rule(owner=st.sampled_from((0, 1)), iid=st.sampled_from((1, 2)), side=st.integers(0, 1),
          order_type=st.sampled_from((R.LIMIT, R.LIMIT, R.LIMIT, R.MARKET, R.MARKET, R.STOP_MARKET, R.STOP_LIMIT)),
          price=st.sampled_from((9_990, 10_000, 10_010, 10_500, 9_000)),
          qty=st.sampled_from((2, 4, 20, 100, 1_000)), odd=st.integers(0, 19), reduce_only=st.integers(0, 7))
    def submit(self, owner, iid, side, order_type, price, qty, odd, reduce_only):
        # mostly well-formed orders (so that the later rules are reached), sometimes each kind of malformed
        stop = 9_900 if order_type in (R.STOP_MARKET, R.STOP_LIMIT) else 0
        if order_type in (R.MARKET, R.STOP_MARKET):
            price = 0
        if odd == 1:
            price = 10_003                  # off the tick of BTC_USDT
        elif odd == 2:
            qty = 101                       # off its lot
        elif odd == 3:
            qty = 0
        elif odd == 4:
            stop = 9_901 if stop else 0
        elif odd == 5:
            price = 0 if price else 10_000  # priced type without price / market type with one
        elif odd == 6:
            price, qty = 1_000, 2           # below the min notional
        elif odd == 7:
            order_type = 0                  # no such type
        reduce_only = reduce_only == 0
        coid = self._coid(owner)
        got = self.core.submit(owner, coid, iid, side, qty, price, order_type=order_type or 99,
                               stop_price_raw=stop, reduce_only=reduce_only, now=self.now)
        want = self.ref.submit(coid, owner, iid, side, order_type or 99, price, qty, self.now,
                               stop_price=stop, reduce_only=reduce_only)
        if want[0] == R.PASSED:
            assert got is None, (got, want)
        else:
            assert got is not None, want
            got_t = (int(got.rule), ALL if got.scope == "global" else got.scope, got.value, got.limit)
            assert got_t[:2] == want[:2] and same(got_t[2], want[2]) and same(got_t[3], want[3]), (got_t, want)

    @rule(name=st.sampled_from(("max_position", "max_order_size", "max_open_orders", "max_exposure",
                                "max_order_notional", "daily_loss", "max_drawdown", "price_band_bps",
                                "reject_burst", "breaker_cooldown")),
          scope=st.sampled_from(SCOPES), iid=st.sampled_from((1, 2)), level=st.integers(0, 3), clear=st.booleans())
    def set_limit(self, name, scope, iid, level, clear):
        values = {"max_open_orders": (0, 1, 2, 5)[level], "max_exposure": (2.0, 10.0, 100.0, 1000.0)[level],
                  "max_order_notional": (2.0, 10.0, 100.0, 500.0)[level], "daily_loss": (0.2, 1.0, 5.0, 50.0)[level],
                  "max_drawdown": (0.2, 1.0, 5.0, 50.0)[level], "price_band_bps": (1, 10, 100, 1000)[level],
                  "reject_burst": ((1, 1.0), (2, 1.0), (2, 100.0), (3, 5.0))[level],
                  "breaker_cooldown": (0.5, 1.0, 2.0, 10.0)[level]}
        rs = ALL if scope is None else scope
        if name in ("max_position", "max_order_size"):
            raw = (20, 100, 120, 1000)[level]
            # BTC_USDT sizes have 3 decimals, ETH_USDT_PERP 2
            value = None if clear else str(Decimal(raw).scaleb(-3 if iid == 1 else -2))
            self.core.risk.set_limit(name, value, strategy=scope, instrument_id=iid, now=self.now)
            self.ref.risk.set_limit(name, None if clear else raw, rs, iid, now=self.now)
            return
        value = None if clear else values[name]
        self.core.risk.set_limit(name, value, strategy=scope, now=self.now)
        self.ref.risk.set_limit(name, value, rs, now=self.now)

    @rule(data=st.data(), partial=st.booleans(), dprice=st.sampled_from((-20, 0, 15)), fee=st.sampled_from((0, 3)))
    def fill_open_order(self, data, partial, dprice, fee):
        live = [o for o in self.ref.table.orders.values() if o.status not in (4, 5, 6, 7)]
        if not live:
            return
        o = data.draw(st.sampled_from(live))
        left = o.quantity - o.filled
        qty = max(left // 2, 1) if partial else left
        if o.instrument_id == 1:
            qty -= qty % 2
            if qty == 0:
                return
        price = (o.price or 10_000) + dprice
        self.trade_id += 1
        self.core.process(fill(o.instrument_id, o.coid, self.trade_id, price, qty, side=o.side, fee=fee,
                               ts_local=self.now))
        self.ref.fill(o.coid, o.instrument_id, o.side, price, qty, self.trade_id, fee=fee)

    @rule(data=st.data(), status=st.sampled_from((2, 5, 6, 6, 7)))
    def venue_update(self, data, status):
        if not self.ref.table.orders:
            return
        o = data.draw(st.sampled_from(list(self.ref.table.orders.values())))
        self.core.process(order_update(o.instrument_id, o.coid, status, side=o.side, price=o.price, quantity=o.quantity,
                                       cum_filled=o.filled, ts_local=self.now))
        self.ref.update(o.coid, o.instrument_id, o.side, status, self.now, price=o.price, quantity=o.quantity,
                        cum_filled=o.filled)

    @rule(iid=st.sampled_from((1, 2)), kind=st.sampled_from(("mark", "quote", "trade", "clear")),
          px=st.sampled_from((9_000, 9_990, 10_000, 10_020, 11_000)))
    def move_market(self, iid, kind, px):
        if kind == "mark" or kind == "clear":
            self.core.portfolio.set_mark(iid, 0 if kind == "clear" else px)
            self.ref.pf.marks[iid] = 0 if kind == "clear" else 2 * px
        elif kind == "quote":
            self.core.process(quote(iid, px, 10, px + 10, 10))
            self.ref.pf.quote_mid[iid] = 2 * px + 10
        else:
            self.core.process(trade(iid, px, 10))
            self.ref.pf.last_trade[iid] = 2 * px

    @rule(scope=st.sampled_from(SCOPES), on=st.integers(0, 4))
    def kill(self, scope, on):
        on = on == 0
        rs = ALL if scope is None else scope
        if on:
            self.core.risk.kill(scope, now=self.now)
        else:
            self.core.risk.release(scope, now=self.now)
        self.ref.risk.state[rs].killed = on

    @rule(scope=st.sampled_from(SCOPES), trip=st.integers(0, 5))
    def breaker(self, scope, trip):
        trip = trip == 0
        rs = ALL if scope is None else scope
        if trip:
            self.core.risk.trip(scope, now=self.now)
            self.ref.risk._trip(rs, R.BREAKER_MANUAL, 0.0, 0.0, self.now)
        else:
            self.core.risk.reset_breaker(scope, now=self.now)
            st_ = self.ref.risk.state[rs]
            st_.breaker, st_.rejects, st_.peak, st_.peak_set = R.BREAKER_NONE, [], self.ref.pf.equity(rs), True

    @rule(step=st.sampled_from((0, 1, 150_000, 1_000_000, 3_000_000, 86_400_000_000)))
    def advance(self, step):
        self.now += step

    @invariant()
    def same_state(self):
        for owner in (0, 1, 64, ALL):
            assert self.core.portfolio.equity(owner) == self.ref.pf.equity(owner)
            assert self.core.orders.open_count(owner) == self.ref.table.open_count(owner)
            for iid in (1, 2):
                d = self.core.portfolio.position(owner, iid)
                p = self.ref.pf.positions.get((owner, iid))
                assert (d is None) == (p is None)
                if p is not None:
                    assert (d["quantity_raw"], d["realized_raw"], d["cost_raw"]) == (p.qty, p.realized, p.cost)


RiskMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=80, deadline=None)
TestRisk = RiskMachine.TestCase
