"""Kernels attached to instruments are updated by the engine before hooks run; Tensor and FeatureVector."""
import numpy as np
import pytest

import extrema
from extrema import (EngineBuilder, FeatureVector, InstrumentRegistry, Market, RecordFlag, RecordKind,
                     RecordSource, Strategy, Tensor, features as F)


@pytest.fixture
def registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    return reg


def trades(prices, sizes=None, sellers=None):
    n = len(prices)
    rec = extrema.empty_records(n)
    rec["kind"] = RecordKind.TRADE
    rec["instrument_id"] = 1
    rec["price"] = np.round(np.asarray(prices) * 100).astype(np.int64)
    rec["quantity"] = np.round(np.asarray(sizes if sizes is not None else [1.0] * n) * 1000).astype(np.int64)
    if sellers is not None:
        rec["flags"] = np.where(sellers, int(RecordFlag.ASK), 0)
    return rec


def book_message(bids, asks, seq):
    rows = [(0, p, q) for p, q in bids] + [(int(RecordFlag.ASK), p, q) for p, q in asks]
    rec = extrema.empty_records(len(rows))
    rec["kind"] = RecordKind.BOOK_DELTA
    rec["instrument_id"] = 1
    rec["sequence"] = seq
    for i, (flag, p, q) in enumerate(rows):
        rec[i]["flags"] = flag
        rec[i]["price"] = round(p * 100)
        rec[i]["quantity"] = round(q * 1000)
    rec["flags"][-1] |= np.uint16(RecordFlag.LAST)
    return rec


def run(registry, strategy, records, subscribe):
    EngineBuilder(registry).channel(RecordSource(records, batch=3)).strategy(strategy, subscribe=subscribe) \
        .build().run(timeout=30)


def test_trade_kernels_are_fresh_in_the_hook(registry):
    prices = np.array([100.0, 101.5, 99.25, 102.0, 103.0, 101.0, 100.5, 104.0])
    sizes = np.array([1.0, 2.0, 0.5, 1.5, 3.0, 1.0, 2.5, 0.25])
    sellers = np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)

    class S(Strategy):
        def on_start(self):
            self.ema = self.context.attach("BTC_USDT", F.Ema(3))
            self.vwap = self.context.attach("BTC_USDT", F.Vwap(), "trade")
            self.flow = self.context.attach("BTC_USDT", F.TradeFlowImbalance(4), "trade")
            self.notional = self.context.attach("BTC_USDT", F.Sma(2), "trade.notional")
            self.seen = []

        def on_trade(self, trade):
            self.seen.append((self.ema.value, self.vwap.value, self.flow.value, self.notional.value))

    s = S()
    run(registry, s, trades(prices, sizes, sellers), {"BTC_USDT": "trades"})
    got = np.array(s.seen)
    np.testing.assert_array_equal(got[:, 0], F.ema(prices, 3))
    ref_vwap, ref_flow, ref_notional = F.Vwap(), F.TradeFlowImbalance(4), F.Sma(2)
    for i in range(len(prices)):
        np.testing.assert_equal(got[i, 1], ref_vwap.update(prices[i], sizes[i]))
        np.testing.assert_equal(got[i, 2], ref_flow.update(sizes[i], not sellers[i]))
        np.testing.assert_equal(got[i, 3], ref_notional.update(prices[i] * sizes[i]))
    assert not np.isnan(got[-1]).any()


def test_book_kernels_update_once_per_message(registry):
    msgs = np.concatenate([
        book_message([(100.0, 1.0)], [(101.0, 3.0)], 1),
        book_message([(100.5, 2.0)], [], 2),
        book_message([], [(100.75, 1.0)], 3),
    ])

    class S(Strategy):
        def on_start(self):
            self.mid = self.context.attach("BTC_USDT", F.Sma(1), "book.mid")
            self.spread = self.context.attach("BTC_USDT", F.Sma(1), "book.spread")
            self.micro = self.context.attach("BTC_USDT", F.Microprice(), "book")
            self.imb = self.context.attach("BTC_USDT", F.BookImbalance(1), "book")
            self.mids = self.context.attach("BTC_USDT", F.Returns(1), "book.mid")
            self.seen = []

        def on_book(self, view):
            b = view.book
            self.seen.append((self.mid.value, b.mid, self.spread.value, b.spread, self.micro.value, b.microprice,
                              self.imb.value, b.imbalance(1), self.mids.count))

    s = S()
    run(registry, s, msgs, {"BTC_USDT": "book"})
    assert len(s.seen) == 3
    for mid, bmid, spread, bspread, micro, bmicro, imb, bimb, count in s.seen:
        assert mid == pytest.approx(bmid) and spread == pytest.approx(bspread)
        assert micro == pytest.approx(bmicro) and imb == pytest.approx(bimb)
    assert [row[-1] for row in s.seen] == [1, 2, 3]          # one update per message, not per level


def test_features_alone_make_the_sources_subscribe(registry):
    class Probe:
        async def run(self, emit, subscriptions):
            self.subs = subscriptions

    class S(Strategy):
        def on_start(self):
            pass

    probe = Probe()
    engine = EngineBuilder(registry).channel(probe).strategy(S()).build()
    engine.dispatcher.attach_feature(1, F.Ema(5), "quote.mid")
    engine.run(timeout=30)
    assert probe.subs == {(1, RecordKind.QUOTE): []}


def test_bad_attachments(registry):
    d = extrema.Dispatcher(registry)
    with pytest.raises(ValueError, match="unknown feature source 'trade.vwap'"):
        d.attach_feature(1, F.Ema(3), "trade.vwap")
    with pytest.raises(TypeError, match="Atr cannot be fed from 'trade.price'"):
        d.attach_feature(1, F.Atr(3), "trade.price")
    with pytest.raises(TypeError, match="Ema cannot be fed from 'book'"):
        d.attach_feature(1, F.Ema(3), "book")
    with pytest.raises(KeyError, match="unknown instrument id 9"):
        d.attach_feature(9, F.Ema(3), "trade.price")


def test_tensor_is_float32_row_major_and_never_reshapes_implicitly():
    t = Tensor((2, 3))
    assert t.shape == (2, 3) and t.numpy().dtype == np.float32 and t.numpy().flags.c_contiguous
    t.copy_from(np.arange(6).reshape(2, 3))
    view = t.reshape((3, 2))
    view.numpy()[0, 0] = 42
    assert t.numpy()[0, 0] == 42                               # shared memory
    with pytest.raises(ValueError, match="does not match the tensor's"):
        t.copy_from(np.arange(6))
    with pytest.raises(ValueError, match=r"as \(4,\)"):
        t.reshape(4)
    with pytest.raises(ValueError, match="shape"):
        Tensor((2, -1))
    u = Tensor.from_numpy(np.array([[1.5, 2.5]]))
    assert u.shape == (1, 2) and u.numpy().tolist() == [[1.5, 2.5]] and u == Tensor.from_numpy([[1.5, 2.5]])


def test_feature_vector_fills_in_place():
    ema, macd, bb = F.Ema(2), F.Macd(3, 5, 2), F.BollingerBands(3)
    out = Tensor((1, 5))
    fv = FeatureVector([ema, (macd, "histogram"), (macd, "signal"), (bb, "upper"), (bb, "lower")], tensor=out)
    assert fv.names == ("Ema", "Macd.histogram", "Macd.signal", "BollingerBands.upper", "BollingerBands.lower")
    assert not fv.is_ready and np.isnan(fv.fill().numpy()).all()
    for x in [1.0, 2.0, 4.0, 3.0, 5.0, 6.0, 4.5, 7.0]:
        ema.update(x), macd.update(x), bb.update(x)
    assert fv.fill() is out and fv.is_ready
    want = np.array([[ema.value, macd.histogram, macd.signal_value, bb.upper, bb.lower]], dtype=np.float32)
    np.testing.assert_array_equal(out.numpy(), want)
    with pytest.raises(ValueError, match="has no output 'upper'"):
        FeatureVector([(ema, "upper")])
    with pytest.raises(ValueError, match="holds 2 values for 1 features"):
        FeatureVector([ema], tensor=Tensor(2))
