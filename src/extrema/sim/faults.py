"""Fault injection for the simulator's websocket market streams and REST API.

Every switch can be changed at run time (plain attributes, read at each frame / request), and every
injected fault is counted in `Faults.counters` so tests can assert on what actually happened.

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

REST faults: ``http_429_rate`` / ``http_418_rate`` answer a request with Binance's rate-limit (429,
-1003, Retry-After) or IP-ban (418) response instead of serving it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

FRAME_FAULTS = ("drop", "duplicate", "reorder", "gap", "malformed", "disconnect")
HTTP_FAULTS = ("http_429", "http_418")


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
    retry_after_s: int = 1  # Retry-After of injected 429 / 418 replies
    refuse_connections: bool = False
    seed: int = 0
    counters: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._armed: Counter = Counter()
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

    def http_fault(self) -> str | None:
        if self._hit("http_418"):
            return "http_418"
        if self._hit("http_429"):
            return "http_429"
        return None
