"""`config.toml`: what `extrema run`, `extrema record` and `extrema backtest` build an engine from.

    cfg = extrema.config.load("config.toml")     # -> Config (plain dicts, every field checked)
    cfg = extrema.config.parse(dict_or_toml_text)

Every field is validated before anything starts: a bad value, a missing required key or an unknown
key (with a did-you-mean) raises ConfigError naming the key path, e.g.
``config.toml: risk.max_open_orders: must be an integer >= 0, got -1``.

Sections (all optional except what a command needs; `examples/config.toml` documents each key):

[engine]          cpu (pin the engine thread), busy_poll, warm_up, use_uvloop, on_error, pnl_method,
                  risk_interval, duration (seconds; 0 = until Ctrl-C)
[[sources]]       type = "simulator" (the bundled Binance simulator: generated market or a capture
                  replay, faults) or "binance" (a Binance market; keys from environment variables
                  named by api_key_env / api_secret_env / private_key_env). `[venue]` is the same as
                  a single [[sources]] entry.
[[instruments]]   symbol = "BTCUSDT" (+ source = "...") loaded from that source's exchangeInfo, or
                  name / market / tick_size / lot_size (+ min_notional, multiplier, venue_symbol)
[[strategies]]    class = "package.module:Class", name, params = {...} (constructor keyword
                  arguments), subscribe = {INSTRUMENT = ["book", "trades"]}, on_error, risk = {...}
[risk]            global limits (the names of engine.risk.set_limit), per-instrument limits in
                  [risk.instruments.NAME], venue order-rate buckets in [[risk.rate_limits]];
                  a strategy's own limits go in its `risk` table
[delivery]        ring_name (a named shared-memory ring other processes attach to), ring_capacity
[storage]         journal (directory), raw_jsonl (file), parquet (file written from the journal at the end)
[backtest]        data (paths), out, realtime, speed, progress, balances, equity_interval_us,
                  latency / queue / fees model tables
[logging]         level, file, format, loggers = {name = level}
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

__all__ = ["Config", "ConfigError", "load", "parse", "RISK_LIMITS", "SUBSCRIPTION_KINDS"]


class ConfigError(ValueError):
    """A configuration problem: `path` is the key path (e.g. "risk.max_open_orders"), `file` the file."""

    def __init__(self, path: str, message: str, file: str | None = None):
        self.path, self.message, self.file = path, message, file
        super().__init__(self._text())

    def _text(self):
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"

    def in_file(self, file):
        self.file = str(file)
        self.args = (self._text(),)
        return self


# Names engine.risk.set_limit knows (see extrema/_core/risk.pyx), by the kind of value each takes.
SCOPED_FLOAT_LIMITS = ("max_exposure", "max_order_notional", "daily_loss", "max_drawdown")
INSTRUMENT_LIMITS = ("max_position", "max_order_size")
RISK_LIMITS = ("max_open_orders", *SCOPED_FLOAT_LIMITS, "price_band_bps", "reject_burst", "breaker_cooldown")
SUBSCRIPTION_KINDS = ("trades", "quotes", "book", "candles", "mark_price", "orders", "fills")
ERROR_POLICIES = ("continue", "disable", "stop")
PNL_METHODS = ("average", "fifo", "lifo")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SIM_MARKETS = ("spot", "usdm")
FAULT_RATES = ("drop_rate", "duplicate_rate", "reorder_rate", "gap_rate", "malformed_rate", "disconnect_rate",
               "http_429_rate", "http_418_rate")
MARKET_NAMES = ("BINANCE_SPOT", "BINANCE_USDM", "OKX", "BYBIT", "HYPERLIQUID", "DERIBIT", "COINBASE",
                "POLYMARKET", "SIM")
CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass
class Config:
    """A validated configuration: each section as plain data with defaults filled in."""
    engine: dict = field(default_factory=dict)
    sources: list = field(default_factory=list)
    instruments: list = field(default_factory=list)
    strategies: list = field(default_factory=list)
    risk: dict = field(default_factory=dict)
    delivery: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)
    backtest: dict = field(default_factory=dict)
    logging: dict = field(default_factory=dict)
    path: Path | None = None

    def resolve(self, value) -> Path:
        """A path from the file, relative to the file's directory (as written when absolute)."""
        p = Path(os.path.expanduser(str(value)))
        if p.is_absolute() or self.path is None:
            return p
        return self.path.parent / p


# ---- field checks ------------------------------------------------------------------------------------

def _type_name(v):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _bool(path, v):
    if not isinstance(v, bool):
        raise ConfigError(path, f"must be true or false, got {_type_name(v)} {v!r}")
    return v


def _int(path, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(path, f"must be an integer{_range(lo, hi)}, got {_type_name(v)} {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(path, f"must be an integer{_range(lo, hi)}, got {v}")
    return v


def _num(path, v, lo=None, hi=None, *, above=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise ConfigError(path, f"must be a number{_range(lo, hi, above)}, got {_type_name(v)} {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi) or (above is not None and not v > above):
        raise ConfigError(path, f"must be a number{_range(lo, hi, above)}, got {v}")
    return float(v)


def _range(lo, hi, above=None):
    if above is not None:
        return f" > {above}"
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _str(path, v, *, choices=None, nonempty=True):
    if not isinstance(v, str):
        raise ConfigError(path, f"must be a string, got {_type_name(v)} {v!r}")
    if choices is not None and v not in choices:
        raise ConfigError(path, f"must be one of {', '.join(map(repr, choices))}, got {v!r}{_did_you_mean(v, choices)}")
    if nonempty and not v.strip():
        raise ConfigError(path, "must not be empty")
    return v


def _str_list(path, v, *, choices=None):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise ConfigError(path, f"must be a string or a non-empty array of strings, got {_type_name(v)} {v!r}")
    return [_str(f"{path}[{i}]", x, choices=choices) for i, x in enumerate(v)]


def _decimal(path, v, *, positive=True):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ConfigError(path, f"must be a decimal number (string like \"0.01\" or a number), got {_type_name(v)} {v!r}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise ConfigError(path, f"must be a decimal number, got {v!r}") from None
    if not d.is_finite() or (positive and d <= 0):
        raise ConfigError(path, f"must be a {'positive ' if positive else ''}decimal number, got {v!r}")
    return str(v)


def _table(path, v):
    if not isinstance(v, dict):
        raise ConfigError(path, f"must be a table, got {_type_name(v)} {v!r}")
    return v


def _did_you_mean(word, known):
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _keys(path, table, known, required=()):
    """Unknown keys are errors (with a did-you-mean); required keys must be present."""
    for k in table:
        if k not in known:
            where = f"{path}.{k}" if path else k
            raise ConfigError(where, f"unknown key{_did_you_mean(k, known)}; "
                                     f"allowed: {', '.join(sorted(known))}")
    for k in required:
        if k not in table:
            raise ConfigError(f"{path}.{k}" if path else k, "is required")


# ---- sections ------------------------------------------------------------------------------------------

ENGINE_KEYS = ("cpu", "busy_poll", "warm_up", "use_uvloop", "on_error", "pnl_method", "risk_interval", "duration")


def _engine(t):
    t = _table("engine", t)
    _keys("engine", t, ENGINE_KEYS)
    out = {"cpu": None, "busy_poll": False, "warm_up": True, "use_uvloop": True, "on_error": "continue", "pnl_method": "average",
           "risk_interval": 1.0, "duration": 0.0}
    if "cpu" in t:
        cpus = sorted(os.sched_getaffinity(0))
        cpu = _int("engine.cpu", t["cpu"], 0)
        if cpu not in cpus:
            raise ConfigError("engine.cpu", f"this process may run on CPUs {cpus}, not {cpu}")
        out["cpu"] = cpu
    for k in ("busy_poll", "warm_up", "use_uvloop"):
        if k in t:
            out[k] = _bool(f"engine.{k}", t[k])
    if "on_error" in t:
        out["on_error"] = _str("engine.on_error", t["on_error"], choices=ERROR_POLICIES)
    if "pnl_method" in t:
        out["pnl_method"] = _str("engine.pnl_method", t["pnl_method"], choices=PNL_METHODS)
    if "risk_interval" in t:
        out["risk_interval"] = _num("engine.risk_interval", t["risk_interval"], 0)
    if "duration" in t:
        out["duration"] = _num("engine.duration", t["duration"], 0)
    return out


SIM_KEYS = ("name", "type", "market", "data", "http", "symbols", "seed", "speed", "loop", "faults", "balances",
            "fees", "port")
BINANCE_KEYS = ("name", "type", "market", "api_key_env", "api_secret_env", "private_key_env", "rest_url", "ws_url",
                "ws_api_url", "order_entry")
FAULT_KEYS = (*FAULT_RATES, "latency_ms", "jitter_ms", "retry_after_s", "seed")


def _source(path, t):
    t = _table(path, t)
    if "type" not in t:
        raise ConfigError(f"{path}.type", "is required: \"simulator\" or \"binance\"")
    kind = _str(f"{path}.type", t["type"], choices=("simulator", "binance"))
    market = _str(f"{path}.market", t.get("market", "spot"), choices=SIM_MARKETS)
    out = {"type": kind, "market": market, "name": t.get("name", f"{kind}-{market}")}
    _str(f"{path}.name", out["name"])
    if kind == "simulator":
        _keys(path, t, SIM_KEYS)
        data = _str(f"{path}.data", t.get("data", "generated"))
        out["data"] = data
        if data == "generated":
            if "http" in t or "loop" in t:
                raise ConfigError(f"{path}.{'http' if 'http' in t else 'loop'}",
                                  "only applies to a capture replay (data = \"path/to/capture.jsonl\")")
            out["symbols"] = _str_list(f"{path}.symbols", t.get("symbols", ["BTCUSDT"]))
            for i, s in enumerate(out["symbols"]):
                if not re.fullmatch(r"[A-Z0-9]{2,20}", s):
                    raise ConfigError(f"{path}.symbols[{i}]", f"must be a Binance symbol like \"BTCUSDT\", got {s!r}")
            out["seed"] = _int(f"{path}.seed", t.get("seed", 1))
        else:
            if "symbols" in t or "seed" in t:
                raise ConfigError(f"{path}.{'symbols' if 'symbols' in t else 'seed'}",
                                  "only applies to data = \"generated\" (a capture replays its own symbols)")
            out["http"] = _str(f"{path}.http", t["http"]) if "http" in t else None
            out["loop"] = _bool(f"{path}.loop", t.get("loop", False))
        out["speed"] = _num(f"{path}.speed", t.get("speed", 1.0), above=0)
        faults = _table(f"{path}.faults", t.get("faults", {}))
        _keys(f"{path}.faults", faults, FAULT_KEYS)
        out["faults"] = {}
        for k, v in faults.items():
            p = f"{path}.faults.{k}"
            if k in FAULT_RATES:
                out["faults"][k] = _num(p, v, 0, 1)
            elif k in ("latency_ms", "jitter_ms"):
                out["faults"][k] = _num(p, v, 0)
            else:
                out["faults"][k] = _int(p, v, 0)
        balances = _table(f"{path}.balances", t.get("balances", {}))
        out["balances"] = {_str(f"{path}.balances", a): _decimal(f"{path}.balances.{a}", v, positive=False)
                           for a, v in balances.items()} or None
        if "fees" in t:
            fees = t["fees"]
            if not isinstance(fees, list) or len(fees) != 2:
                raise ConfigError(f"{path}.fees", f"must be [maker_ppm, taker_ppm] (parts per million), got {fees!r}")
            out["fees"] = (_int(f"{path}.fees[0]", fees[0], 0, 1_000_000), _int(f"{path}.fees[1]", fees[1], 0, 1_000_000))
        else:
            out["fees"] = None
        out["port"] = _int(f"{path}.port", t["port"], 0, 65534) if "port" in t else 0
    else:
        _keys(path, t, BINANCE_KEYS)
        for k in ("api_key_env", "api_secret_env", "private_key_env", "rest_url", "ws_url", "ws_api_url"):
            out[k] = _str(f"{path}.{k}", t[k]) if k in t else None
        if out["api_secret_env"] and out["private_key_env"]:
            raise ConfigError(path, "give api_secret_env (HMAC key) or private_key_env (Ed25519 / RSA key), not both")
        if (out["api_secret_env"] or out["private_key_env"]) and not out["api_key_env"]:
            raise ConfigError(f"{path}.api_key_env", "is required with api_secret_env / private_key_env")
        if out["api_key_env"] and not (out["api_secret_env"] or out["private_key_env"]):
            raise ConfigError(f"{path}.api_secret_env", "is required with api_key_env (or private_key_env)")
        for k in ("rest_url", "ws_url", "ws_api_url"):
            if out[k] and not re.match(r"^(https?|wss?)://", out[k]):
                raise ConfigError(f"{path}.{k}", f"must be an http(s):// or ws(s):// URL, got {out[k]!r}")
        out["order_entry"] = _str(f"{path}.order_entry", t.get("order_entry", "ws_api"), choices=("ws_api", "rest"))
    return out


INSTRUMENT_SYMBOL_KEYS = ("symbol", "source")
INSTRUMENT_SPEC_KEYS = ("name", "market", "tick_size", "lot_size", "min_notional", "multiplier", "venue_symbol")


def _instrument(path, t, source_names):
    t = _table(path, t)
    if "symbol" in t:
        _keys(path, t, INSTRUMENT_SYMBOL_KEYS)
        out = {"symbol": _str(f"{path}.symbol", t["symbol"])}
        if "source" in t:
            out["source"] = _str(f"{path}.source", t["source"], choices=source_names or ("(no sources)",))
        elif len(source_names) == 1:
            out["source"] = source_names[0]
        elif not source_names:
            raise ConfigError(f"{path}.symbol", "loads the instrument from a source's exchangeInfo, but the "
                                                "config has no [[sources]]; give name / market / tick_size / lot_size")
        else:
            raise ConfigError(f"{path}.source", f"is required with several sources: one of {', '.join(source_names)}")
        return out
    _keys(path, t, INSTRUMENT_SPEC_KEYS, required=("name", "market", "tick_size", "lot_size"))
    out = {"name": _str(f"{path}.name", t["name"]),
           "market": _str(f"{path}.market", t["market"].upper() if isinstance(t["market"], str) else t["market"],
                          choices=MARKET_NAMES)}
    try:
        from extrema._core.instruments import parse_name
        parse_name(out["name"])
    except ValueError as e:
        raise ConfigError(f"{path}.name", f"{e} (normalised names: BTC_USDT, BTC_USDT_PERP, "
                                          "BTC_USDT_FUT_20261225, ...)") from None
    for k in ("tick_size", "lot_size", "multiplier"):
        if k in t:
            out[k] = _decimal(f"{path}.{k}", t[k])
    if "min_notional" in t:
        out["min_notional"] = _decimal(f"{path}.min_notional", t["min_notional"], positive=False)
    if "venue_symbol" in t:
        out["venue_symbol"] = _str(f"{path}.venue_symbol", t["venue_symbol"])
    return out


def _limits(path, t, *, scoped_instruments=True):
    """Risk limits (global [risk] or a strategy's `risk` table): name -> value as set_limit takes it."""
    t = _table(path, t)
    known = (*RISK_LIMITS, "instruments") + (("rate_limits",) if path == "risk" else ())
    _keys(path, t, known)
    out = {"limits": {}, "instruments": {}, "rate_limits": []}
    for k, v in t.items():
        p = f"{path}.{k}"
        if k == "max_open_orders":
            out["limits"][k] = _int(p, v, 0)
        elif k in SCOPED_FLOAT_LIMITS:
            out["limits"][k] = _num(p, v, above=0)
        elif k == "price_band_bps":
            out["limits"][k] = _int(p, v, 1)
        elif k == "breaker_cooldown":
            out["limits"][k] = _num(p, v, 0)
        elif k == "reject_burst":
            if not isinstance(v, list) or len(v) != 2:
                raise ConfigError(p, f"must be [count, window_seconds], got {v!r}")
            out["limits"][k] = (_int(f"{p}[0]", v[0], 1, 64), _num(f"{p}[1]", v[1], above=0))
        elif k == "instruments":
            for name, lim in _table(p, v).items():
                lp = f"{p}.{name}"
                lim = _table(lp, lim)
                _keys(lp, lim, INSTRUMENT_LIMITS)
                out["instruments"][name] = {n: _decimal(f"{lp}.{n}", x) for n, x in lim.items()}
        elif k == "rate_limits":
            if not isinstance(v, list):
                raise ConfigError(p, f"must be an array of tables ([[risk.rate_limits]]), got {_type_name(v)}")
            for i, r in enumerate(v):
                rp = f"{p}[{i}]"
                r = _table(rp, r)
                _keys(rp, r, ("market", "orders", "per_seconds"), required=("market", "orders", "per_seconds"))
                out["rate_limits"].append({
                    "market": _str(f"{rp}.market", r["market"].upper() if isinstance(r["market"], str) else r["market"],
                                   choices=MARKET_NAMES),
                    "orders": _int(f"{rp}.orders", r["orders"], 1),
                    "per_seconds": _num(f"{rp}.per_seconds", r["per_seconds"], above=0)})
    return out


STRATEGY_KEYS = ("class", "name", "params", "subscribe", "on_error", "risk")


def _strategy(path, t):
    t = _table(path, t)
    _keys(path, t, STRATEGY_KEYS, required=("class",))
    cls = _str(f"{path}.class", t["class"])
    if not CLASS_PATH.match(cls):
        raise ConfigError(f"{path}.class", f"must be an import path \"package.module:ClassName\", got {cls!r}")
    out = {"class": cls, "name": _str(f"{path}.name", t["name"]) if "name" in t else None,
           "params": dict(_table(f"{path}.params", t.get("params", {}))), "subscribe": {},
           "on_error": _str(f"{path}.on_error", t["on_error"], choices=ERROR_POLICIES) if "on_error" in t else None,
           "risk": _limits(f"{path}.risk", t.get("risk", {}))}
    for inst, kinds in _table(f"{path}.subscribe", t.get("subscribe", {})).items():
        out["subscribe"][inst] = _str_list(f"{path}.subscribe.{inst}", kinds, choices=SUBSCRIPTION_KINDS)
    return out


def _delivery(t):
    t = _table("delivery", t)
    _keys("delivery", t, ("ring_name", "ring_capacity"))
    out = {"ring_name": None, "ring_capacity": 1 << 16}
    if "ring_name" in t:
        name = _str("delivery.ring_name", t["ring_name"])
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name):
            raise ConfigError("delivery.ring_name", f"letters, digits, '_', '.', '-' only, got {name!r}")
        out["ring_name"] = name
    if "ring_capacity" in t:
        cap = _int("delivery.ring_capacity", t["ring_capacity"], 2, 1 << 32)
        if cap & (cap - 1):
            raise ConfigError("delivery.ring_capacity", f"must be a power of two, got {cap}")
        out["ring_capacity"] = cap
    return out


def _storage(t):
    t = _table("storage", t)
    _keys("storage", t, ("journal", "raw_jsonl", "parquet"))
    out = {k: _str(f"storage.{k}", t[k]) if k in t else None for k in ("journal", "raw_jsonl", "parquet")}
    if out["parquet"] and not out["journal"]:
        raise ConfigError("storage.parquet", "is exported from the journal: set storage.journal too")
    return out


BACKTEST_KEYS = ("data", "out", "realtime", "speed", "progress", "balances", "equity_interval_us", "latency", "queue",
                 "fees", "report")
LATENCY_MODELS = ("constant", "data")
QUEUE_MODELS = ("conservative", "probabilistic")


def _model(path, t, models, default):
    t = _table(path, t)
    model = _str(f"{path}.model", t.get("model", default), choices=models)
    params = {k: v for k, v in t.items() if k != "model"}
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ConfigError(f"{path}.{k}", f"must be a number or a string, got {_type_name(v)} {v!r}")
    return {"model": model, "params": params}


def _backtest(t):
    t = _table("backtest", t)
    _keys("backtest", t, BACKTEST_KEYS)
    out = {"data": _str_list("backtest.data", t["data"]) if "data" in t else [],
           "out": _str("backtest.out", t["out"]) if "out" in t else None,
           "realtime": _bool("backtest.realtime", t.get("realtime", False)),
           "speed": _num("backtest.speed", t.get("speed", 1.0), above=0),
           "progress": _bool("backtest.progress", t.get("progress", True)),
           "report": _bool("backtest.report", t.get("report", True)),
           "equity_interval_us": _int("backtest.equity_interval_us", t.get("equity_interval_us", 1_000_000), 1),
           "balances": {}, "latency": _model("backtest.latency", t.get("latency", {}), LATENCY_MODELS, "constant"),
           "queue": _model("backtest.queue", t.get("queue", {}), QUEUE_MODELS, "conservative"),
           "fees": None}
    if out["latency"]["model"] == "constant":
        for k, v in out["latency"]["params"].items():
            if k not in ("feed_us", "entry_us", "response_us"):
                raise ConfigError(f"backtest.latency.{k}", f"unknown key{_did_you_mean(k, ('feed_us', 'entry_us', 'response_us'))}; "
                                                           "allowed: feed_us, entry_us, response_us")
            _int(f"backtest.latency.{k}", v, 0)
    for asset, v in _table("backtest.balances", t.get("balances", {"USDT": 100_000})).items():
        out["balances"][asset] = _num(f"backtest.balances.{asset}", v, 0)
    if "fees" in t:
        fees = _table("backtest.fees", t["fees"])
        _keys("backtest.fees", fees, ("maker", "taker", "instruments"))
        out["fees"] = {k: _num(f"backtest.fees.{k}", fees[k], -1, 1) for k in ("maker", "taker") if k in fees}
        per = {}
        for name, f in _table("backtest.fees.instruments", fees.get("instruments", {})).items():
            fp = f"backtest.fees.instruments.{name}"
            f = _table(fp, f)
            _keys(fp, f, ("maker", "taker"), required=("maker", "taker"))
            per[name] = {k: _num(f"{fp}.{k}", f[k], -1, 1) for k in ("maker", "taker")}
        if per:
            out["fees"]["instruments"] = per
    return out


def _logging(t):
    t = _table("logging", t)
    _keys("logging", t, ("level", "file", "format", "loggers"))
    out = {"level": _str("logging.level", str(t.get("level", "WARNING")).upper(), choices=LOG_LEVELS),
           "file": _str("logging.file", t["file"]) if "file" in t else None,
           "format": _str("logging.format", t.get("format", "%(asctime)s %(name)s %(levelname)s %(message)s")),
           "loggers": {}}
    for name, level in _table("logging.loggers", t.get("loggers", {})).items():
        out["loggers"][name] = _str(f"logging.loggers.{name}", str(level).upper(), choices=LOG_LEVELS)
    return out


SECTIONS = ("engine", "sources", "venue", "instruments", "strategies", "risk", "delivery", "storage", "backtest",
            "logging")


def parse(data, *, path=None) -> Config:
    """Validate a config (a dict as tomllib gives it, or TOML text); raises ConfigError."""
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("", f"not valid TOML: {e}") from None
    _keys("", data, SECTIONS)
    cfg = Config(path=Path(path) if path is not None else None)
    cfg.engine = _engine(data.get("engine", {}))
    if "venue" in data and "sources" in data:
        raise ConfigError("venue", "give [venue] (one source) or [[sources]] (several), not both")
    if "venue" in data:
        cfg.sources = [_source("venue", data["venue"])]
    else:
        raw = data.get("sources", [])
        if not isinstance(raw, list):
            raise ConfigError("sources", "must be an array of tables: write [[sources]] (or [venue] for one)")
        cfg.sources = [_source(f"sources[{i}]", s) for i, s in enumerate(raw)]
    names = [s["name"] for s in cfg.sources]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(f"sources[{i}].name", f"{n!r} is used by another source: give each a distinct name")
    raw = data.get("instruments", [])
    if not isinstance(raw, list):
        raise ConfigError("instruments", "must be an array of tables: write [[instruments]]")
    cfg.instruments = [_instrument(f"instruments[{i}]", t, names) for i, t in enumerate(raw)]
    raw = data.get("strategies", [])
    if not isinstance(raw, list):
        raise ConfigError("strategies", "must be an array of tables: write [[strategies]]")
    cfg.strategies = [_strategy(f"strategies[{i}]", t) for i, t in enumerate(raw)]
    cfg.risk = _limits("risk", data.get("risk", {}))
    cfg.delivery = _delivery(data.get("delivery", {}))
    cfg.storage = _storage(data.get("storage", {}))
    cfg.backtest = _backtest(data.get("backtest", {}))
    cfg.logging = _logging(data.get("logging", {}))
    return cfg


def load(path) -> Config:
    """Read and validate a config.toml; ConfigError names the file and the key path of any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"no such config file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("", f"cannot read {path}: {e}") from None
    try:
        return parse(text, path=path)
    except ConfigError as e:
        raise e.in_file(path) from None


def env_secret(path: str, var: str) -> str:
    """The value of environment variable `var` (named in the config at `path`)."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(path, f"environment variable {var} is not set (the config names it for the key)")
    return value
