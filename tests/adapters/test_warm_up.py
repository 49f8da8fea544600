"""The busy-poll warm-up (extrema.engine.warm) changes nothing anyone can observe.

- The decoder's rehearsal of its last frame, interleaved anywhere in the real captures, NautilusTrader's
  market- and user-data frames and bad input, leaves every decode output, `info`, the counters and the
  diagnostics exactly as a decoder that never rehearsed; it decodes market-data frames to the same records
  and user-data / dropped / control frames to nothing.
- Against the simulator over real sockets: after orders of the compiled fast path, the order sink's, the
  context's and the market data's warm() sends nothing and leaves the encoder's bytes, the rate limiter's
  windows, the pending answers and every counter as they were; an engine that busy-polls with the warm-up
  on sends the venue exactly the orders its strategy submitted.
- A warm-up that raises is logged and left out; the others go on.
"""
import fcntl
import json
import logging
import struct
import termios

import pytest
from hypothesis import given, note, settings, strategies as st

from extrema import EngineBuilder, InstrumentRegistry, Strategy
from extrema._core.binance import BinanceDecoder, BinanceEvent
from extrema.adapters.binance.venue import BinanceVenue
from extrema.engine.warm import SocketPathWarmer, WarmUp

from test_binance_e2e import sim  # noqa: F401  (the simulator fixture: spot and USD-M)
from test_binance_codec import MARKETS, Pair, capture_instruments, capture_lines, market_of, nautilus_files, symbols_in
from models.binance_depth import SPOT, USDM
from waiting import wait_for

BAD = [b"", b"{", b'{"stream":"btcusdt@trade","data":{"e":"trade","p":"NaN"}}', b"[1,2]", b'{"result":null,"id":7}',
       b'{"stream":"nosuch@depth","data":{"e":"depthUpdate","s":"NOSUCH","U":1,"u":2,"b":[],"a":[]}}']


USER_DATA_EVENTS = {int(e) for e in (BinanceEvent.EXECUTION_REPORT, BinanceEvent.ORDER_TRADE_UPDATE,
                                     BinanceEvent.ACCOUNT_POSITION, BinanceEvent.ACCOUNT_UPDATE,
                                     BinanceEvent.ALGO_UPDATE)}
REHEARSED_EVENTS = {int(e) for e in (BinanceEvent.DEPTH_UPDATE, BinanceEvent.TRADE, BinanceEvent.AGG_TRADE,
                                     BinanceEvent.BOOK_TICKER, BinanceEvent.KLINE, BinanceEvent.MARK_PRICE)}


def observable(decoder):
    return (dict(decoder.info), decoder.stats(), decoder.last_drop, decoder.last_error)


def frames_of(fixtures_dir, market):
    frames = [raw.encode() for _, raw in capture_lines(fixtures_dir, market)]
    for path in nautilus_files(fixtures_dir):
        if market_of(path) == market:
            frames.append(path.read_bytes())
    return frames


def decoder_for(fixtures_dir, market, frames):
    instruments = dict(capture_instruments(fixtures_dir, market))
    for raw in frames:
        try:
            for symbol in symbols_in(json.loads(raw), set()):
                instruments.setdefault(symbol, (8, 8))
        except ValueError:
            pass
    return Pair(market, instruments).decoder


@pytest.mark.parametrize("market", [SPOT, USDM])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_decoder_rehearsal_changes_nothing(fixtures_dir, market, data):
    frames = frames_of(fixtures_dir, market)
    picked = data.draw(st.lists(st.sampled_from(frames + BAD), min_size=1, max_size=60))
    plain = decoder_for(fixtures_dir, market, frames)
    warmed = decoder_for(fixtures_dir, market, frames)
    rehearsed = 0
    for i, raw in enumerate(picked):
        ts = 1_700_000_000_000_000 + i
        want = plain.decode(raw, ts)
        got = warmed.decode(raw, ts)
        info = dict(warmed.info)
        if info["event"] in USER_DATA_EVENTS:
            # unknown client order ids get ids from one process-wide counter: the twins' differ
            assert len(got) == len(want)
        else:
            assert got.tobytes() == want.tobytes()
        for _ in range(data.draw(st.integers(0, 3))):
            again = warmed.warm()
            if info["drop_reason"] == 0 and info["records"] and info["event"] in REHEARSED_EVENTS:
                assert again.tobytes() == got.tobytes()        # the same frame, the same records
                rehearsed += 1
            else:
                assert len(again) == 0                          # user data, control, dropped: not rehearsed
        assert observable(warmed) == observable(plain)
    assert warmed.stats()["frames"] == len(picked)
    note(f"{rehearsed} rehearsals")


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_every_capture_frame_is_rehearsed_to_its_own_records(fixtures_dir, market):
    decoder = decoder_for(fixtures_dir, market, [])
    rehearsed = frames = 0
    for ts, raw in capture_lines(fixtures_dir, market):
        got = decoder.decode(raw.encode(), ts)
        frames += 1
        before = observable(decoder)
        again = decoder.warm()              # the same records (none for an open kline, which is skipped)
        assert again.tobytes() == got.tobytes() and observable(decoder) == before
        rehearsed += len(got) > 0
    assert rehearsed > 150 and decoder.stats()["frames"] == frames


def test_a_fresh_decoder_rehearses_nothing():
    registry = InstrumentRegistry()
    decoder = BinanceDecoder(registry, MARKETS[SPOT])
    assert len(decoder.warm()) == 0 and decoder.stats()["frames"] == 0


# ---- the order path, against the simulator -------------------------------------------------------------

class Orders(Strategy):
    """Sends `n` resting orders on the fast path, one per trade, far below the market; then runs `action`
    (on the engine thread, where the sink, the decoder and the contexts live) at the next trade."""

    def __init__(self, inst, n):
        super().__init__("orders")
        self.inst, self.n, self.sent = inst, n, []
        self.action, self.result = None, []

    def on_trade(self, trade):
        if len(self.sent) < self.n:
            price = float(int(trade.price * 0.5))
            self.sent.append(self.context.submit(self.inst, "buy", "0.01", price))
        elif self.action is not None:
            action, self.action = self.action, None
            self.result.append(action())


def run_engine(sim, n_orders, **options):
    registry = InstrumentRegistry()
    venue = BinanceVenue.for_simulator(sim, order_entry="ws_api")
    (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
    strategy = Orders(inst, n_orders)
    engine = (EngineBuilder(registry).venue(venue).strategy(strategy, subscribe={inst: "trades"})
              .options(stop_when_sources_done=False, **options).build())
    engine.start()
    return engine, venue, strategy


def venue_orders(sim):
    return sim.call(lambda: len(sim.engine.orders))


def test_warm_ups_send_nothing_and_change_nothing(sim):
    engine, venue, strategy = run_engine(sim, 3)
    ex, md = venue.execution, venue.market_data
    try:
        wait_for(lambda: len(strategy.sent) == 3 and venue_orders(sim) == 3, what="three orders at the venue")
        sink, context = ex.ws_api.order_sink, strategy.context

        def state():
            api = ex.ws_api
            limiter = api.rate_limiter
            return (sink.encoder.payload(), sink.encoder.frame_len, sink.encoder.written, sink.last_ts_ms,
                    dict(api.counters), api.session.stats.as_dict(), sorted(api._pending),
                    [(b.confirmed, b.pending) for b in limiter._budgets], limiter.in_flight,
                    md.decoder.stats(), dict(md.decoder.info), md.decoder.last_drop,
                    engine.orders.to_numpy().tobytes(), engine.orders.stats(), engine.order_ids._counter)

        def warm_many():
            before = state()
            for _ in range(200):
                md.warm()
                ex.warm()
                context.warm()
            return before, state()

        strategy.action = warm_many           # one hook call: nothing else runs between the two snapshots
        wait_for(lambda: strategy.result, what="the warm-ups on the engine thread")
        (before, after), = strategy.result
        assert before == after
        assert venue_orders(sim) == 3         # nothing more reached the venue
    finally:
        engine.stop()


def test_a_busy_polling_engine_with_warm_up_sends_exactly_its_orders(sim):
    engine, venue, strategy = run_engine(sim, 20, busy_poll=True)      # warm_up is on by default
    ex = venue.execution
    try:
        wait_for(lambda: len(strategy.sent) == 20 and venue_orders(sim) == 20, what="twenty orders at the venue",
                 timeout=60)
        fast = ex.ws_api.order_sink.encoder.written
        # every WebSocket API request the venue read is one the client made (warm-ups write none)
        wait_for(lambda: sim.call(lambda: sim.counters["ws_api_requests"]) == ex.ws_api.counters["sent"],
                 what="the venue to read the client's requests",
                 detail=lambda: f": {sim.counters['ws_api_requests']} read, {ex.ws_api.counters['sent']} sent")
    finally:
        engine.stop()
    assert engine.error is None
    assert fast >= 1                  # orders took the compiled path (the first may go before the WS API is up)
    assert venue_orders(sim) == 20 and ex.ws_api.counters["sent"] == ex.ws_api.session.stats.sent
    assert engine.stats()["dispatcher"]["hook_errors"] == 0


# ---- the warm-up loop ------------------------------------------------------------------------------------

def test_a_warm_up_that_raises_is_logged_and_left_out(caplog):
    calls = []

    class Part:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def warm(self):
            calls.append(self.name)
            if self.fail:
                raise RuntimeError("broken warm-up")

    warm = WarmUp([Part("a"), Part("b", fail=True), Part("c"), None, object()], socket_path=False)
    with caplog.at_level(logging.ERROR, logger="extrema.engine"):
        warm()
        warm()
        warm()
    warm.close()
    assert calls == ["a", "b", "a", "c", "a", "c"]
    assert sum("broken" in r.getMessage() or "left out" in r.getMessage() for r in caplog.records) == 1


def test_the_socket_path_warmer_reads_back_what_it_writes():
    warmer = SocketPathWarmer(interval_us=0, size=4096)
    try:
        assert warmer._out.getpeername() == warmer._in.getsockname() and warmer._in.getsockname()[0] == "127.0.0.1"
        for _ in range(5000):        # 20 MB: far beyond the socket buffers, were the bytes left unread
            warmer()
        unread = struct.unpack("i", fcntl.ioctl(warmer._in.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        assert unread <= 4096
    finally:
        warmer.close()
    assert warmer._out.fileno() == -1 and warmer._in.fileno() == -1
