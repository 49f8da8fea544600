"""WsSession against a real picows server on 127.0.0.1: messages, fragments, reconnects, watchdog."""
import asyncio
import random

import picows
import pytest

from extrema.adapters.ws import Backoff, TokenBucket, WsSession
from waiting import async_wait_for


class ServerListener(picows.WSListener):
    def __init__(self, server):
        self.server = server

    def on_ws_connected(self, transport):
        self.server.transports.append(transport)
        self.server.connected.set()

    def on_ws_frame(self, transport, frame):
        if frame.msg_type == picows.WSMsgType.TEXT:
            self.server.received.append(frame.get_payload_as_bytes())


class Server:
    """A picows server whose tests push frames and cut connections by hand."""

    def __init__(self):
        self.transports = []
        self.received = []
        self.connected = asyncio.Event()
        self.paths = []

    async def __aenter__(self):
        def factory(request):
            self.paths.append(request.path)
            return ServerListener(self)
        self._server = await picows.ws_create_server(factory, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/stream"
        return self

    async def __aexit__(self, *exc):
        for t in self.transports:
            t.disconnect()
        self._server.close()
        await self._server.wait_closed()

    async def next_connection(self, count):
        while len(self.transports) < count:
            await asyncio.sleep(0.005)
        return self.transports[count - 1]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_messages_fragments_and_subscribe_on_every_connect():
    async def main():
        got = []
        connects = []

        async def on_connect(session):
            connects.append(session.stats.connects)
            await session.send_text('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')

        async with Server() as server:
            session = WsSession(server.url, lambda p, ts: got.append((bytes(p), ts)),
                                on_connect=on_connect, backoff=Backoff(base=0.01, cap=0.05))
            task = asyncio.create_task(session.run())
            t1 = await server.next_connection(1)
            t1.send(picows.WSMsgType.TEXT, b'{"a":1}')
            # One message in three frames: TEXT (fin=0), CONTINUATION (fin=0), CONTINUATION (fin=1).
            t1.send(picows.WSMsgType.TEXT, b'{"b":', fin=False)
            t1.send(picows.WSMsgType.CONTINUATION, b'[1,2', fin=False)
            t1.send(picows.WSMsgType.CONTINUATION, b']}', fin=True)
            await async_wait_for(lambda: len(got) == 2)
            assert [g[0] for g in got] == [b'{"a":1}', b'{"b":[1,2]}']
            assert all(ts > 1_600_000_000_000_000 for _, ts in got)   # µs since the epoch
            # The server drops the connection: the session reconnects and subscribes again.
            t1.disconnect()
            t2 = await server.next_connection(2)
            await async_wait_for(lambda: len(server.received) == 2)
            t2.send(picows.WSMsgType.TEXT, b'{"c":3}')
            await async_wait_for(lambda: len(got) == 3)
            session.stop()
            await task
            assert connects == [1, 2]
            assert server.received == [b'{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}'] * 2
            assert session.stats.connects == 2 and session.stats.disconnects == 2
            assert session.stats.messages == 3
    run(main())


def test_stale_stream_is_dropped_and_reopened():
    async def main():
        async with Server() as server:
            session = WsSession(server.url, lambda p, ts: None, stale_after=0.2,
                                backoff=Backoff(base=0.01, cap=0.02))
            task = asyncio.create_task(session.run())
            await server.next_connection(2)         # the first went silent and was replaced
            session.stop()
            await task
            assert session.stats.stale_drops >= 1
    run(main())


@pytest.mark.parametrize("step_s", [-3600, 3600])
def test_the_watchdog_ignores_wall_clock_steps(monkeypatch, step_s):
    # Message stamps are wall-clock time (records need it); the watchdog must not be: after the wall clock
    # steps back an hour a silent stream is still dropped, after it steps forward a live one is kept.
    import extrema.adapters.ws as ws
    real, offset = ws.time_us, [0]
    monkeypatch.setattr(ws, "time_us", lambda: real() + offset[0])

    async def main():
        async with Server() as server:
            session = WsSession(server.url, lambda p, ts: None, stale_after=0.3,
                                backoff=Backoff(base=0.01, cap=0.02))
            task = asyncio.create_task(session.run())
            await server.next_connection(1)
            await async_wait_for(lambda: session.connected)
            offset[0] = step_s * 1_000_000                # the wall clock steps, the connection is up
            if step_s < 0:                                # silent: must be replaced
                await asyncio.wait_for(server.next_connection(2), 10)
                assert session.stats.stale_drops >= 1
            else:                                         # a message every 50 ms: must be kept
                for _ in range(16):
                    server.transports[-1].send(picows.WSMsgType.TEXT, b"tick")
                    await asyncio.sleep(0.05)
                assert session.stats.stale_drops == 0 and len(server.transports) == 1
            session.stop()
            await task
    run(main())


def test_connection_is_rotated_before_its_maximum_age():
    async def main():
        async with Server() as server:
            session = WsSession(server.url, lambda p, ts: None, max_age=0.2, stale_after=60,
                                backoff=Backoff(base=0.01, cap=0.02))
            task = asyncio.create_task(session.run())
            await server.next_connection(3)
            session.stop()
            await task
            assert session.stats.age_rotations >= 2
            assert session.stats.stale_drops == 0
    run(main())


def test_refused_connections_back_off_and_recover():
    async def main():
        async with Server() as server:
            url = server.url
        # The port is closed now: connecting fails until a server listens there again.
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        session = WsSession(url, lambda p, ts: None, backoff=Backoff(base=0.01, cap=0.05))
        task = asyncio.create_task(session.run())
        await async_wait_for(lambda: session.stats.connect_failures >= 3)
        listeners = []
        server = await picows.ws_create_server(lambda r: listeners.append(1) or picows.WSListener(),
                                               "127.0.0.1", port)
        await session.wait_connected(5)
        session.stop()
        await task
        server.close()
        assert session.stats.connects == 1 and listeners == [1]
    run(main())


def test_a_failing_handler_is_counted_and_the_stream_goes_on():
    async def main():
        got = []

        def handler(payload, ts):
            if bytes(payload) == b"bad":
                raise ValueError("boom")
            got.append(bytes(payload))
        async with Server() as server:
            session = WsSession(server.url, handler)
            task = asyncio.create_task(session.run())
            t = await server.next_connection(1)
            for m in (b"one", b"bad", b"two"):
                t.send(picows.WSMsgType.TEXT, m)
            await async_wait_for(lambda: len(got) == 2)
            session.stop()
            await task
        assert got == [b"one", b"two"] and session.stats.handler_errors == 1
    run(main())


def test_backoff_grows_to_its_cap_with_full_jitter_and_resets():
    b = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    ceilings = [0.5, 1, 2, 4, 4, 4]
    for ceiling in ceilings:
        d = b.next_delay()
        assert 0 <= d <= ceiling
    b.reset()
    assert b.next_delay() <= 0.5


def test_token_bucket_paces_a_burst():
    bucket = TokenBucket(rate=5, burst=5)
    for _ in range(5):
        assert bucket.delay_for() == 0
        bucket._tokens -= 1
    # The sixth message must wait about 1/5 s for its token.
    assert 0.15 < bucket.delay_for() <= 0.2
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
