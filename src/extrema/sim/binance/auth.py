"""Request signing checks and rate limits, as Binance applies them.

Signatures (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/request-security):
* the signed payload is the query string followed by the request body, exactly as sent, without the
  `signature` parameter ("totalParams");
* HMAC-SHA256 keys: `signature` is the lowercase hex HMAC of the payload with the secret key;
* Ed25519 keys: `signature` is the base64 Ed25519 signature of the payload (URL-encoded in the request);
* `X-MBX-APIKEY` names the key; `timestamp` must satisfy
  `timestamp < serverTime + 1000` and `serverTime - timestamp <= recvWindow` (default 5000, max 60000).

Rate limits (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits, USD-M
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info#limits): request weight
per IP per minute, order counts per account per 10 s and per day (spot) / per minute (USD-M), counted in
fixed windows. The used amounts go out in `X-MBX-USED-WEIGHT-1M` / `X-MBX-ORDER-COUNT-*` headers. Over a
limit: HTTP 429 with `Retry-After`; an IP that keeps sending while limited is banned: HTTP 418.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..matching import SPOT, Reject

# The API key / secret of Binance's own HMAC example (rest-api.md "SIGNED Endpoint Examples"): the keys
# every simulator accepts unless told otherwise.
DEFAULT_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DEFAULT_API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


class KeyVerifier:
    """Checks signatures for one API key: HMAC-SHA256 (secret string) or Ed25519 (public key)."""

    def __init__(self, secret_or_public_key):
        key = secret_or_public_key
        self.ed25519: Ed25519PublicKey | None = None
        self.secret: bytes | None = None
        if isinstance(key, Ed25519PublicKey):
            self.ed25519 = key
        elif isinstance(key, (str, bytes)) and ("BEGIN PUBLIC KEY" in (key.decode() if isinstance(key, bytes) else key)):
            pub = load_pem_public_key(key.encode() if isinstance(key, str) else key)
            if not isinstance(pub, Ed25519PublicKey):
                raise ValueError("only Ed25519 public keys are supported (Binance RSA keys are not simulated)")
            self.ed25519 = pub
        elif isinstance(key, str) and key:
            self.secret = key.encode()
        elif isinstance(key, bytes) and key:
            self.secret = key
        else:
            raise ValueError("an API key needs an HMAC secret (str) or an Ed25519 public key (PEM or object)")

    @property
    def kind(self) -> str:
        return "ed25519" if self.ed25519 is not None else "hmac"

    def verify(self, payload: str, signature: str) -> bool:
        if self.secret is not None:
            expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            self.ed25519.verify(raw, payload.encode())
        except InvalidSignature:
            return False
        return True


def split_signature(text: str) -> tuple[str, str | None]:
    """(text without its `signature=` parameter, the signature URL-decoded or None)."""
    if not text:
        return "", None
    kept, sig = [], None
    for part in text.split("&"):
        if part.startswith("signature="):
            sig = unquote_plus(part[len("signature="):])
        else:
            kept.append(part)
    return "&".join(kept), sig


def check_signed(keys: dict[str, KeyVerifier], api_key: str | None, query: str, body: str, params: dict,
                 now_ms: int, signed: bool = True):
    """Raise Reject with Binance's code for any problem of an authenticated request."""
    if not api_key:
        raise Reject(-2014, "API-key format invalid.", 401)
    verifier = keys.get(api_key)
    if verifier is None:
        raise Reject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    if not signed:
        return
    ts, window = _timing_params(params)
    q_payload, q_sig = split_signature(query)
    b_payload, b_sig = split_signature(body)
    sig = q_sig if q_sig is not None else b_sig
    if not sig:
        raise Reject(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    if not verifier.verify(q_payload + b_payload, sig):
        raise Reject(-1022, "Signature for this request is not valid.")
    _check_timing(ts, window, now_ms)


def _timing_params(params: dict) -> tuple[int, int]:
    ts_text = params.get("timestamp")
    if ts_text is None or not ts_text.isdigit():
        raise Reject(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    window_text = params.get("recvWindow", "5000")
    try:
        window = int(window_text)
    except ValueError:
        raise Reject(-1100, "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}$'.")
    if window > 60000 or window < 0:
        raise Reject(-1131, "recvWindow must be less than 60000")
    return int(ts_text), window


def _check_timing(ts: int, window: int, now_ms: int) -> None:
    if ts >= now_ms + 1000:
        raise Reject(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now_ms - ts > window:
        raise Reject(-1021, "Timestamp for this request is outside of the recvWindow.")


def ws_api_payload(params: dict) -> str:
    """The WebSocket API signature payload: every parameter but `signature`, sorted by name, `k=v` joined
    with `&`, values as sent (not percent-encoded)
    (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def check_ws_api(keys: dict[str, KeyVerifier], params: dict, now_ms: int, session_key: str | None,
                 signed: bool = True) -> str:
    """Authenticate one WebSocket API request; returns the API key it acts for. `params` are the request's
    parameters as text (numbers as their JSON text, booleans 'true' / 'false'). A connection logged on with
    session.logon (`session_key`) may leave out apiKey and signature; SIGNED requests still need
    `timestamp`. Raises Reject with Binance's code."""
    api_key = params.get("apiKey")
    if api_key is None and session_key is not None and "signature" not in params:
        if signed:
            _check_timing(*_timing_params(params), now_ms)
        return session_key
    if not api_key:
        raise Reject(-1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.")
    verifier = keys.get(api_key)
    if verifier is None:
        raise Reject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    if not signed:
        return api_key
    ts, window = _timing_params(params)
    sig = params.get("signature")
    if not sig:
        raise Reject(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    if not verifier.verify(ws_api_payload(params), sig):
        raise Reject(-1022, "Signature for this request is not valid.")
    _check_timing(ts, window, now_ms)
    return api_key


@dataclass
class RateLimits:
    """Limits of one simulated market (defaults: Binance's published values)."""

    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_long: int = 200000  # spot: per day; USD-M: per minute
    ban_after: int = 3  # 429 answers within one limited window before the IP is banned
    ban_seconds: int = 120

    @classmethod
    def for_market(cls, market: str) -> "RateLimits":
        if market == SPOT:
            return cls()
        return cls(weight_per_minute=2400, orders_per_10s=300, orders_per_long=1200)


class Limited(Exception):
    def __init__(self, status: int, code: int, msg: str, retry_after: int):
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after = status, code, msg, retry_after


class RateLimiter:
    """Fixed-window counters per IP (weight) and per account (orders), with the 429 -> 418 escalation."""

    def __init__(self, market: str, limits: RateLimits, clock=time.time):
        self.market = market
        self.limits = limits
        self.clock = clock
        self.long_s = 86400 if market == SPOT else 60
        self.weight: dict[tuple[str, int], int] = {}
        self.orders10: dict[int, int] = {}
        self.orders_long: dict[int, int] = {}
        self.violations: dict[str, int] = {}
        self.banned_until: dict[str, float] = {}

    def _gc(self, minute: int):
        for k in [k for k in self.weight if k[1] < minute - 1]:
            del self.weight[k]

    def used_weight(self, ip: str) -> int:
        return self.weight.get((ip, int(self.clock() // 60)), 0)

    def order_counts(self) -> tuple[int, int]:
        now = self.clock()
        return self.orders10.get(int(now // 10), 0), self.orders_long.get(int(now // self.long_s), 0)

    def ban_message(self, ip: str, until: float) -> str:
        return (f"Way too many requests; IP({ip}) banned until {int(until * 1000)}. "
                "Please use the websocket for live updates to avoid bans.")

    def charge(self, ip: str, weight: int, orders: int):
        """Count one request; raise Limited when it goes over a limit (it is not served then)."""
        now = self.clock()
        until = self.banned_until.get(ip, 0.0)
        if until > now:
            raise Limited(418, -1003, self.ban_message(ip, until), max(1, int(until - now + 0.999)))
        minute = int(now // 60)
        self._gc(minute)
        used = self.weight.get((ip, minute), 0) + weight
        self.weight[(ip, minute)] = used
        if used > self.limits.weight_per_minute:
            n = self.violations.get(ip, 0) + 1
            self.violations[ip] = n
            retry = max(1, int((minute + 1) * 60 - now + 0.999))
            if n > self.limits.ban_after:
                until = now + self.limits.ban_seconds
                self.banned_until[ip] = until
                self.violations[ip] = 0
                raise Limited(418, -1003, self.ban_message(ip, until), self.limits.ban_seconds)
            raise Limited(429, -1003, f"Too many requests; current limit of IP({ip}) is "
                                      f"{self.limits.weight_per_minute} requests per minute. Please use the "
                                      "websocket for live updates to avoid polling the API.", retry)
        self.violations[ip] = 0
        if orders:
            w10, wl = int(now // 10), int(now // self.long_s)
            n10 = self.orders10.get(w10, 0) + orders
            nl = self.orders_long.get(wl, 0) + orders
            self.orders10 = {w10: n10}
            self.orders_long = {wl: nl}
            if n10 > self.limits.orders_per_10s:
                raise Limited(429, -1015, f"Too many new orders; current limit is {self.limits.orders_per_10s} "
                                          "orders per 10 SECOND.", max(1, int((w10 + 1) * 10 - now + 0.999)))
            if nl > self.limits.orders_per_long:
                unit = "DAY" if self.market == SPOT else "MINUTE"
                raise Limited(429, -1015, f"Too many new orders; current limit is {self.limits.orders_per_long} "
                                          f"orders per {unit}.", max(1, int((wl + 1) * self.long_s - now + 0.999)))
