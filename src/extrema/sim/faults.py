"""Fault injection for the simulator's websocket market streams and REST API.

Every switch can be changed at run time (plain attributes, read at each frame / request), and every
injected fault is counted in `Faults.counters` (request faults also logged with their time and endpoint in
`Faults.request_log`) so tests can assert on what actually happened.

Rates are probabilities per eligible frame (or request), drawn from one `random.Random(seed)`; `inject`
arms one-shot faults that hit the next `n` eligible frames whatever the rates are, which is what a test
that must see exactly one gap wants.

Frame faults (market data streams only; user data streams and request replies are never altered):

* ``drop``       the frame is not sent;
* ``duplicate``  the frame is sent twice;
* ``reorder``    the frame is held back and sent right after the next frame of the connection;
* ``gap``        a depth-diff frame is withheld, so the next one breaks the U/u (spot) or pu (USD-M) chain;
* ``malformed``  the frame's text is cut in half (invalid JSON);
* ``disconnect`` the connection is closed (websocket close 1001, "going away") instead of sending it;
* ``latency_ms`` every frame and every REST reply is delayed by this much (plus ``jitter_ms`` drawn uniformly).

``refuse_connections`` (bool): every websocket connection attempt is answered 503 - with
``BinanceSimulator.disconnect_all()`` it makes an outage that lasts until it is switched off.

Request faults (REST and WebSocket API alike; ``fault_endpoints`` limits them to some endpoints, named
"POST /api/v3/order" - a WebSocket API method counts as the REST endpoint it mirrors, order.place as
"POST /api/v3/order"):

* ``http_429`` / ``http_418``  the request is answered with Binance's rate-limit (429, -1003, Retry-After)
  or IP-ban (418) response instead of being served;
* ``http_5xx``    the answer is HTTP 500 -1006 "Execution status unknown" (WebSocket API: status 500).
  With ``http_5xx_executes`` the request was served first (the order is at the venue), else not at all;
* ``drop_reply``  the request is served and its answer never sent: REST closes the connection instead,
  the WebSocket API simply sends nothing;
* ``slow_reply``  the request is served at once and its answer sent ``slow_reply_ms`` later (beyond a
  client's timeout when that is longer than it).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

FRAME_FAULTS = ("drop", "duplicate", "reorder", "gap", "malformed", "disconnect")
HTTP_FAULTS = ("http_429", "http_418", "http_5xx", "drop_reply", "slow_reply")


@dataclass
class Faults:
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    gap_rate: float = 0.0
    malformed_rate: float = 0.0
    disconnect_rate: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    http_429_rate: float = 0.0
    http_418_rate: float = 0.0
    http_5xx_rate: float = 0.0
    drop_reply_rate: float = 0.0
    slow_reply_rate: float = 0.0
    retry_after_s: int = 1  # Retry-After of injected 429 / 418 replies
    http_5xx_executes: bool = False  # an injected 5xx comes after the request was served
    slow_reply_ms: float = 2000.0
    fault_endpoints: tuple | None = None  # request faults hit only these endpoints ("POST /api/v3/order")
    refuse_connections: bool = False
    seed: int = 0
    counters: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._armed: Counter = Counter()
        self.request_log: deque = deque(maxlen=1000)  # (wall time s, fault, endpoint) of each request fault
        for name in FRAME_FAULTS + HTTP_FAULTS:
            self._check_rate(name)

    def _check_rate(self, name: str):
        rate = getattr(self, f"{name}_rate")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name}_rate must be within [0, 1], got {rate}")

    def inject(self, fault: str, n: int = 1):
        """Arm `fault` for the next `n` eligible frames (or requests, for http_429 / http_418)."""
        if fault not in FRAME_FAULTS + HTTP_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FRAME_FAULTS + HTTP_FAULTS}")
        if n < 1:
            raise ValueError("n must be >= 1")
        self._armed[fault] += n

    def clear(self):
        """Every rate back to 0, latency off, armed faults disarmed (counters kept)."""
        for name in FRAME_FAULTS + HTTP_FAULTS:
            setattr(self, f"{name}_rate", 0.0)
        self.latency_ms = self.jitter_ms = 0.0
        self.refuse_connections = False
        self.http_5xx_executes = False
        self.fault_endpoints = None
        self._armed.clear()

    def _hit(self, fault: str) -> bool:
        if self._armed[fault] > 0:
            self._armed[fault] -= 1
            self.counters[fault] += 1
            return True
        rate = getattr(self, f"{fault}_rate")
        if rate > 0.0 and self._rng.random() < rate:
            self.counters[fault] += 1
            return True
        return False

    def frame_fault(self, is_depth: bool) -> str | None:
        """The fault (if any) for one outgoing market frame; gaps only hit depth diffs."""
        if self._hit("disconnect"):
            return "disconnect"
        if is_depth and self._hit("gap"):
            return "gap"
        for fault in ("drop", "duplicate", "reorder", "malformed"):
            if self._hit(fault):
                return fault
        return None

    def delay_s(self) -> float:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return 0.0
        jitter = self._rng.uniform(0.0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        return (self.latency_ms + jitter) / 1000.0

    def request_fault(self, endpoint: str) -> str | None:
        """The fault (if any) for one request to `endpoint` ("POST /api/v3/order"), REST or WebSocket API."""
        if self.fault_endpoints is not None and endpoint not in self.fault_endpoints:
            return None
        for fault in HTTP_FAULTS:
            if self._hit(fault):
                self.request_log.append((time.time(), fault, endpoint))
                return fault
        return None
