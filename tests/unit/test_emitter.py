"""The engine's compiled record path (extrema._core.emit.Emitter, Engine._emit) against the Python one it
replaced (tests/models/emit_reference.py): two engines, one driven by each, get the same hypothesis-drawn
batches of trades, quotes, order updates and fills - through an 8-slot ring, so multi-slot events wrap
around its end and batches are larger than the ring - and must show their strategies the same events and
end with the same orders, positions and counts."""
from hypothesis import given, settings, strategies as st

from extrema import EngineBuilder, InstrumentRegistry, Market, OrderStatus, Strategy
from tests.models.emit_reference import reference_emit
from tests.order_records import concat, fill, order_update, quote, trade


class Recorder(Strategy):
    def __init__(self):
        super().__init__("recorder")
        self.seen = []

    def on_trade(self, t):
        self.seen.append(("trade", t.instrument_id, t.price, t.size))

    def on_quote(self, q):
        self.seen.append(("quote", q.bid_price, q.ask_price))

    def on_order(self, o):
        self.seen.append(("order", o.client_order_id, int(o.status), o.filled))

    def on_fill(self, f):
        self.seen.append(("fill", f.client_order_id, f.trade_id, f.price, f.quantity))


def build():
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    strategy = Recorder()
    engine = (EngineBuilder(reg).strategy(strategy, subscribe={inst: ("trades", "quotes")})
              .options(ring_capacity=8).build())          # batches of up to 18 records: larger than the ring
    return engine, strategy, inst


event = st.one_of(
    st.tuples(st.just("trade"), st.integers(1, 10**6), st.integers(1, 10**4)),
    st.tuples(st.just("quote"), st.integers(1, 10**6), st.integers(1, 10**3)),
    st.tuples(st.just("order"), st.integers(0, 3), st.sampled_from([OrderStatus.ACCEPTED, OrderStatus.CANCELLED])),
    st.tuples(st.just("fill"), st.integers(0, 3), st.integers(1, 10**4)),
)


def records(inst, batch, coids, trade_ids):
    out = []
    for e in batch:
        if e[0] == "trade":
            out.append(trade(inst.id, e[1], e[2]))
        elif e[0] == "quote":
            out.append(quote(inst.id, e[1], e[2], e[1] + 1, e[2]))
        elif e[0] == "order":
            out.append(order_update(inst.id, coids[e[1]], e[2], price=100_00, quantity=5_000))
        else:
            trade_ids[0] += 1
            out.append(fill(inst.id, coids[e[1]], trade_ids[0], 100_00, e[2]))
    return concat(*out)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(event, min_size=1, max_size=9), min_size=1, max_size=12))
def test_compiled_record_path_matches_the_python_one(batches):
    runs = []
    for path in ("compiled", "python"):
        engine, strategy, inst = build()
        coids = [engine.order_ids.next(0) for _ in range(4)]
        for coid in coids:
            assert engine.execution_core.submit(0, coid, inst.id, "buy", 5_000, 100_00) is None
        trade_ids = [0]
        for batch in batches:
            recs = records(inst, batch, coids, trade_ids)
            if path == "compiled":
                engine._emit(recs)
            else:
                reference_emit(engine, recs)
        # the two engines' ids and creation times differ (wall clock): compare orders by their index
        index = {c: i for i, c in enumerate(coids)}
        seen = [e[:1] + (index[e[1]],) + e[2:] if e[0] in ("order", "fill") else e for e in strategy.seen]
        orders = [{k: v for k, v in engine.orders.get(c).items() if k != "client_order_id" and not k.startswith("ts_")}
                  for c in coids]
        position = {k: ("nan" if v != v else v) for k, v in engine.portfolio.position(0, inst.id).items()}
        runs.append((seen, orders, position, engine.published,
                     engine.dispatcher.stats()))
    assert runs[0] == runs[1]
    assert runs[0][3] == sum(len(records(build()[2], b, [1, 2, 3, 4], [0])) for b in batches)
