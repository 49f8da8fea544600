"""Order-entry suite: the cost of sending one order, WebSocket API (BinanceWsApi) against REST (BinanceRest).

Figures (see benches/README.md, "The order_entry suite"):
  1. `place_order` from the call to the frame written (p50 / p99 / p99.9, µs) over >= 10,000 spot LIMIT
     orders against the simulator: the time the caller (a strategy hook) spends before the bytes are in
     the socket. Four set-ups: HMAC key (every request signed) through the Python path and through the
     compiled writer (`place_order_raw`: raw numbers, extrema._core.binance_orders), Ed25519 key with a
     logged-on session (`session.logon`: requests unsigned), Ed25519 key signing every request.
  2. The peer: BinanceRest.new_order (aiohttp) from the call until its request bytes are written,
     measured by instrumenting aiohttp's StreamWriter._write / _writelines (the last transport write of
     the request; the coroutine is driven by the event loop like any REST call), same orders.
  3. Round trips (call -> answer decoded, p50 / p99), one order at a time, WebSocket API and REST.

The simulator runs in a child process (its own interpreter: no GIL shared with the measured client),
generated market around 60,000, orders at 30,000 so they rest; each batch of 100 is answered, then
cancelled over the WebSocket API before the next. The client runs on uvloop when installed (the
engine's default loop), else asyncio's. GC stays enabled (a real engine runs with it): the tail shows it.
"""

from __future__ import annotations

import asyncio
import gc
import time

import numpy as np

from workloads.binance_sim import simulator_process

PEERS: list[str] = []          # the peer is extrema's own REST client (aiohttp is a dependency)

FULL = dict(orders=10_000, batch=100, round_trips=1_000, write_probe=2_000)
QUICK = dict(orders=1_000, batch=100, round_trips=200, write_probe=500)
SPACING_NS = 200_000           # one order every 200 µs inside a batch (a tick-driven pace, not a burst)
QUANTILES = (50, 99, 99.9)



def _pct(samples_ns) -> list[float]:
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return [float(np.percentile(a, q)) for q in QUANTILES]


class _WriteClock:
    """Times of aiohttp's transport writes (StreamWriter._write / _writelines), patched on the class."""

    def __init__(self):
        from aiohttp import http_writer
        self.cls = http_writer.StreamWriter
        self.last_ns = 0
        self._orig = (self.cls._write, self.cls._writelines)
        clock = self

        def _write(self_, chunk):
            clock._orig[0](self_, chunk)
            clock.last_ns = time.perf_counter_ns()

        def _writelines(self_, chunks):
            clock._orig[1](self_, chunks)
            clock.last_ns = time.perf_counter_ns()
        self.cls._write, self.cls._writelines = _write, _writelines

    def restore(self):
        self.cls._write, self.cls._writelines = self._orig


async def _drain(api, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while api.pending:
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"order_entry: {api.pending} WebSocket API answers missing after {timeout} s")
        await asyncio.sleep(0.001)


async def _cancel_batch(api, ids):
    for cid in ids:
        api.cancel_order("BTCUSDT", client_order_id=cid)
    await _drain(api)


def _check_answers(answers, what):
    bad = [a for a in answers if not a.ok]
    if bad:
        raise RuntimeError(f"order_entry: {len(bad)} {what} answers failed, first: {bad[0]!r}")
    answers.clear()


async def _measure(urls, creds_hmac, creds_ed, p, log):
    from extrema._core.instruments import Market
    from extrema.adapters.binance import BinanceRest, BinanceWsApi, RateLimit

    unlimited = [RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10**9), RateLimit("ORDERS", "SECOND", 10, 10**9),
                 RateLimit("ORDERS", "DAY", 1, 10**9)]
    ws_url = urls["ws_url"] + "/ws-api/v3"
    out = {}
    pc = time.perf_counter_ns
    setups = [("hmac", creds_hmac, dict(logon=False)), ("hmac_compiled", creds_hmac, dict(logon=False)),
              ("ed25519_session", creds_ed, dict(logon=True)), ("ed25519_signed", creds_ed, dict(logon=False))]
    canceller = None
    for name, creds, kw in setups:
        answers = []
        api = BinanceWsApi(Market.BINANCE_SPOT, ws_url, creds, rate_limits=unlimited,
                           on_response=answers.append, **kw)
        runner = asyncio.ensure_future(api.run())
        await api.wait_ready(10)
        n, batch = p["orders"], p["batch"]
        samples = np.empty(n, dtype=np.int64)
        # Warm-up batch, not recorded.
        ids = [f"w{name[:3]}{i}" for i in range(batch)]
        for cid in ids:
            api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=cid, quantity="0.001", price="30000.00")
        await _drain(api)
        _check_answers(answers, name)
        await _cancel_batch(api, ids)
        _check_answers(answers, name + " cancel")
        k = 0
        while k < n:
            gc.collect()
            ids = []
            due = pc()
            for _ in range(min(batch, n - k)):
                cid = f"{name[:3]}{k}"
                due += SPACING_NS
                while pc() < due:
                    pass
                if name == "hmac_compiled":
                    # the same order from raw numbers through the compiled writer (the engine's fast path)
                    t0 = pc()
                    api.place_order_raw("BTCUSDT", cid, 0, 2, 1, 3_000_000, 2, 1, 3)
                    samples[k] = pc() - t0
                else:
                    t0 = pc()
                    api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=cid, quantity="0.001",
                                    price="30000.00")
                    samples[k] = pc() - t0
                ids.append(cid)
                k += 1
            await _drain(api)
            _check_answers(answers, name)
            await _cancel_batch(api, ids)
            _check_answers(answers, name + " cancel")
        out[f"ws_{name}"] = samples
        log(f"{name}: {n} orders, p50 {np.percentile(samples, 50) / 1e3:.2f} µs")
        if name == "hmac":
            # How much of the call is the socket write: picows' send (frame header + copy + write to the
            # kernel, which on loopback also runs the receiving side's TCP path), timed on its own.
            send_now = api.session.send_now
            writes = []

            def timed_send(data):
                t = pc()
                send_now(data)
                writes.append(pc() - t)
            api.session.send_now = timed_send
            m = p["write_probe"]
            for j in range(0, m, batch):
                ids = [f"wp{j + i}" for i in range(min(batch, m - j))]
                due = pc()
                for cid in ids:
                    due += SPACING_NS
                    while pc() < due:
                        pass
                    api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=cid, quantity="0.001",
                                    price="30000.00")
                await _drain(api)
                _check_answers(answers, "write probe")
                writes_n = len(writes)
                await _cancel_batch(api, ids)
                del writes[writes_n:]
                _check_answers(answers, "write probe cancel")
            api.session.send_now = send_now
            out["ws_write"] = np.asarray(writes, dtype=np.int64)
            rt = np.empty(p["round_trips"], dtype=np.int64)
            for i in range(p["round_trips"]):
                cid = f"rt{i}"
                t0 = pc()
                await api.result(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=cid,
                                                 quantity="0.001", price="30000.00"), timeout=10)
                rt[i] = pc() - t0
                if i % batch == batch - 1:
                    await _cancel_batch(api, [f"rt{j}" for j in range(i - batch + 1, i + 1)])
                    answers.clear()
            out["ws_round_trip"] = rt
            canceller = api
            canceller_runner = runner
            answers.clear()
        else:
            api.stop()
            await runner

    # REST peer: the same orders through BinanceRest.new_order, cancelled in batches over the WS API.
    clock = _WriteClock()
    try:
        async with BinanceRest(Market.BINANCE_SPOT, urls["rest_url"], creds_hmac, rate_limits=unlimited) as rest:
            await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="restw", quantity="0.001",
                                 price="30000.00")              # opens the keep-alive connection
            await _cancel_batch(canceller, ["restw"])
            n, batch = p["orders"], p["batch"]
            to_write = np.empty(n, dtype=np.int64)
            round_trip = np.empty(n, dtype=np.int64)
            k = 0
            while k < n:
                gc.collect()
                ids = []
                for _ in range(min(batch, n - k)):
                    cid = f"rest{k}"
                    t0 = pc()
                    await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id=cid, quantity="0.001",
                                         price="30000.00")
                    t1 = pc()
                    to_write[k] = clock.last_ns - t0
                    round_trip[k] = t1 - t0
                    ids.append(cid)
                    k += 1
                await _cancel_batch(canceller, ids)
            out["rest_to_write"] = to_write
            out["rest_round_trip"] = round_trip
            log(f"rest: {n} orders, to-write p50 {np.percentile(to_write, 50) / 1e3:.2f} µs")
    finally:
        clock.restore()
        canceller.stop()
        await canceller_runner
    return out


def run(ctx) -> list[dict]:
    try:
        from extrema.adapters.binance import BinanceCredentials
        from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"order_entry suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = QUICK if ctx.quick else FULL
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    creds_hmac = BinanceCredentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    creds_ed = BinanceCredentials("bench-ed25519", private_key_pem=private)
    cfg = {"api_keys": {DEFAULT_API_KEY: DEFAULT_API_SECRET, "bench-ed25519": public}}
    with simulator_process(api_keys=cfg["api_keys"], who="order_entry suite") as urls:
        try:
            import uvloop
            loop = uvloop.new_event_loop()
            ctx.log("client loop: uvloop")
        except ImportError:
            loop = asyncio.new_event_loop()
            ctx.note("uvloop not installed: the client ran on asyncio's default loop")
        try:
            res = loop.run_until_complete(_measure(urls, creds_hmac, creds_ed, p, ctx.log))
        finally:
            loop.close()

    rows = []
    rest = _pct(res["rest_to_write"])
    labels = {"hmac": "HMAC key, signed", "hmac_compiled": "HMAC key, signed, compiled (place_order_raw)",
              "ed25519_session": "Ed25519 key, logged-on session (unsigned)", "ed25519_signed": "Ed25519 key, signed"}
    n = p["orders"]
    for name, label in labels.items():
        ws = _pct(res[f"ws_{name}"])
        for q, v, peer_v in zip(QUANTILES, ws, rest):
            rows.append(ctx.row(f"order call -> bytes written p{q:g}, {label}", v, "µs",
                                "BinanceRest.new_order (aiohttp) -> bytes written", peer_v,
                                note=f"{n} spot LIMIT orders against the simulator"))
    for q, v in zip(QUANTILES, _pct(res["ws_write"])):
        rows.append(ctx.row(f"  of which the socket write (picows send) p{q:g}, HMAC", v, "µs",
                            note=f"{len(res['ws_write'])} orders, send timed on its own"))
    for q, v, peer_v in zip(QUANTILES[:2], _pct(res["ws_round_trip"])[:2], _pct(res["rest_round_trip"])[:2]):
        rows.append(ctx.row(f"order round trip (call -> answer) p{q:g}, WebSocket API HMAC", v, "µs",
                            "BinanceRest.new_order round trip", peer_v,
                            note="simulator in a child process on the same 2 cores"))
    return rows
