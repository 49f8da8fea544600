"""Turn a validated Config into running parts: simulators, venues, instruments, strategies, an engine.

    app = build_engine(cfg)            # simulators started, instruments loaded, limits set
    app.engine.start(); ...; app.engine.stop(); app.close()

Everything that can be wrong with the file is a ConfigError naming the key (a strategy class that does
not import, parameters its constructor refuses, an instrument the venue does not list, a limit the
risk engine refuses, a missing environment variable for an API key).
"""
from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass, field

from extrema.config import Config, ConfigError, env_secret

log = logging.getLogger("extrema.cli")


def setup_logging(cfg_logging: dict, *, debug=False):
    handlers = [logging.StreamHandler()]
    if cfg_logging.get("file"):
        handlers.append(logging.FileHandler(cfg_logging["file"]))
    logging.basicConfig(level=logging.DEBUG if debug else getattr(logging, cfg_logging.get("level", "WARNING")),
                        format=cfg_logging.get("format"), handlers=handlers, force=True)
    for name, level in cfg_logging.get("loggers", {}).items():
        logging.getLogger(name).setLevel(level)


def make_simulator(src: dict, *, path="sources[0]", resolve=lambda p: p):
    """A BinanceSimulator (not started) from a validated simulator source table."""
    from extrema.sim import BinanceSimulator, CaptureReplay, Faults, GeneratedMarket
    if src["data"] == "generated":
        try:
            source = GeneratedMarket(seed=src["seed"], symbols=src["symbols"], speed=src["speed"])
            source.specs(src["market"])
        except (ValueError, KeyError) as e:
            raise ConfigError(f"{path}.symbols", f"{str(e).strip(chr(34) + chr(39))} (the generated market "
                                                 f"lists BTCUSDT, ETHUSDT and any XXXUSDT)") from None
    else:
        ws = resolve(src["data"])
        http = resolve(src["http"]) if src.get("http") else None
        for key, p in (("data", ws), ("http", http)):
            if p is not None and not p.is_file():
                raise ConfigError(f"{path}.{key}", f"no such capture file: {p}")
        try:
            source = CaptureReplay(ws, http, speed=src["speed"], loop=src.get("loop", False))
        except (ValueError, KeyError) as e:
            raise ConfigError(f"{path}.data", f"cannot replay {ws}: {e}") from None
        if source.market != src["market"]:
            raise ConfigError(f"{path}.market", f"the capture is {source.market} market data, the source says "
                                                f"{src['market']!r}")
    try:
        port = src.get("port", 0)
        return BinanceSimulator(market=src["market"], source=source, faults=Faults(**src.get("faults", {})),
                                balances=src.get("balances"), fees=src.get("fees"),
                                rest_port=port, ws_port=port + 1 if port else 0)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def start_simulator(sim, path):
    try:
        return sim.start_in_thread()
    except OSError as e:
        raise ConfigError(f"{path}.port", f"the simulator cannot listen: {e.strerror or e}") from None


def make_venue(src: dict, sim=None, *, path="sources[0]"):
    from extrema._core.instruments import Market
    from extrema.adapters.binance.signing import BinanceCredentials
    from extrema.adapters.binance.venue import BinanceVenue
    if sim is not None:
        return BinanceVenue.for_simulator(sim)
    creds = None
    if src.get("api_key_env"):
        key = env_secret(f"{path}.api_key_env", src["api_key_env"])
        try:
            if src.get("api_secret_env"):
                creds = BinanceCredentials(key, secret=env_secret(f"{path}.api_secret_env", src["api_secret_env"]))
            else:
                creds = BinanceCredentials(key, private_key_pem=env_secret(f"{path}.private_key_env",
                                                                           src["private_key_env"]))
        except ValueError as e:
            raise ConfigError(path, f"bad API credentials: {e}") from None
    market = Market.BINANCE_SPOT if src["market"] == "spot" else Market.BINANCE_USDM
    return BinanceVenue(market, credentials=creds, rest_url=src.get("rest_url"), ws_url=src.get("ws_url"),
                        ws_api_url=src.get("ws_api_url"), order_entry=src.get("order_entry", "ws_api"))


def import_class(path: str, where: str):
    module_name, _, qual = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(where, f"cannot import module {module_name!r}: {e}") from None
    for part in qual.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            from extrema.config import _did_you_mean
            raise ConfigError(where, f"module {module_name!r} has no {part!r}{_did_you_mean(part, public)}")
        obj = getattr(obj, part)
    return obj


def make_strategy(spec: dict, where: str, *, search_dir=None):
    """The strategy of a validated [[strategies]] entry; `search_dir` (the config's directory) is importable,
    so `class = "my_strategy:MyStrategy"` finds my_strategy.py next to the config."""
    import sys
    from extrema import Strategy
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.append(str(search_dir))
    cls = import_class(spec["class"], f"{where}.class")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{where}.class", f"{spec['class']} is not an extrema.Strategy subclass")
    params = dict(spec["params"])
    if spec.get("name") is not None:
        params["name"] = spec["name"]
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as e:
        raise ConfigError(f"{where}.params", f"{spec['class']}{_signature(cls)}: {e}") from None
    try:
        strategy = cls(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}.params", f"{spec['class']} refused them: {e}") from None
    if spec.get("on_error"):
        strategy.on_error = spec["on_error"]
    return strategy


def _signature(cls):
    try:
        return str(inspect.signature(cls))
    except (TypeError, ValueError):
        return "(...)"


def find_instrument(registry, name, where):
    """An instrument by normalised name ("BTC_USDT") or venue symbol ("BTCUSDT")."""
    found = [i for i in registry if i.name == name] or [i for i in registry if i.venue_symbol == name]
    if len(found) == 1:
        return found[0]
    known = sorted({i.name for i in registry})
    if not found:
        from extrema.config import _did_you_mean
        raise ConfigError(where, f"no instrument {name!r}{_did_you_mean(name, known)}; "
                                 f"the engine has: {', '.join(known) or 'none'}")
    raise ConfigError(where, f"{name!r} trades on several markets ({', '.join(i.market.name for i in found)})")


@dataclass
class App:
    """What build_engine made: stop the engine first, then close() (stops the simulators)."""
    engine: object
    registry: object
    venues: dict = field(default_factory=dict)
    simulators: dict = field(default_factory=dict)
    strategies: list = field(default_factory=list)
    recorders: list = field(default_factory=list)

    def close(self):
        for sim in self.simulators.values():
            sim.stop_thread()


def register_instruments(cfg: Config, registry, venues: dict):
    from extrema._core.instruments import Market
    by_source = {}
    for i, spec in enumerate(cfg.instruments):
        where = f"instruments[{i}]"
        if "symbol" in spec:
            by_source.setdefault(spec["source"], []).append((where, spec["symbol"]))
            continue
        extra = {k: spec[k] for k in ("min_notional", "multiplier", "venue_symbol") if k in spec}
        try:
            if "venue_symbol" not in extra and spec["market"] in ("BINANCE_SPOT", "BINANCE_USDM"):
                # what Binance captures and streams name it (BTC_USDT_PERP -> BTCUSDT)
                from extrema.adapters.binance.symbols import venue_symbol_for_name
                extra["venue_symbol"] = venue_symbol_for_name(Market[spec["market"]], spec["name"])
            registry.register(spec["name"], Market[spec["market"]], spec["tick_size"], spec["lot_size"], **extra)
        except ValueError as e:
            raise ConfigError(where, str(e)) from None
    for i, src in enumerate(cfg.sources):
        if src["type"] == "binance" and not any(spec.get("source") == src["name"] for spec in cfg.instruments):
            raise ConfigError("instruments", f"list what to trade on sources[{i}] ({src['name']!r}): "
                                             f"[[instruments]] symbol = \"BTCUSDT\", source = {src['name']!r}")
    if not cfg.instruments:
        # a generated simulator market trades its own symbols: nothing to list
        for src in cfg.sources:
            if src["type"] == "simulator" and src["data"] == "generated":
                by_source[src["name"]] = [(f"sources[{cfg.sources.index(src)}].symbols", s) for s in src["symbols"]]
    for name, wanted in by_source.items():
        venue = venues[name]
        try:
            venue.load_instruments(registry, [s for _, s in wanted])
        except KeyError as e:
            missing = str(e).strip("'\"")
            where = next((w for w, s in wanted if s in missing), wanted[0][0])
            raise ConfigError(where, missing) from None
        except OSError as e:
            raise ConfigError(wanted[0][0], f"cannot load exchangeInfo from {venue.rest_url}: {e}") from None


def apply_limits(engine, limits: dict, *, strategy=None, where="risk"):
    from extrema._core.instruments import Market
    try:
        for name, value in limits["limits"].items():
            engine.risk.set_limit(name, value, strategy=strategy, who="config")
    except ValueError as e:
        raise ConfigError(f"{where}.{name}", str(e)) from None
    for inst_name, lims in limits["instruments"].items():
        inst = find_instrument(engine.registry, inst_name, f"{where}.instruments.{inst_name}")
        for name, value in lims.items():
            try:
                engine.risk.set_limit(name, value, strategy=strategy, instrument_id=inst.id, who="config")
            except ValueError as e:
                raise ConfigError(f"{where}.instruments.{inst_name}.{name}", str(e)) from None
    for i, r in enumerate(limits.get("rate_limits", [])):
        try:
            engine.risk.set_rate_limit(Market[r["market"]], r["orders"], r["per_seconds"])
        except ValueError as e:
            raise ConfigError(f"{where}.rate_limits[{i}]", str(e)) from None


def build_engine(cfg: Config, *, strategies=None, record=None, need_strategies=True) -> App:
    """Start the config's simulators, load instruments, build the engine (not started) with its strategies
    and risk limits. `strategies`: [(strategy, subscribe)] to run instead of the config's; `record`:
    {"journal": dir, "raw_jsonl": path} wraps the market-data sources in extrema.storage.Recorder."""
    from extrema import EngineBuilder, InstrumentRegistry
    if not cfg.sources:
        raise ConfigError("sources", "the config has no [[sources]] (or [venue]): add a simulator or a Binance market")
    app = App(engine=None, registry=InstrumentRegistry())
    try:
        for i, src in enumerate(cfg.sources):
            where = f"sources[{i}]"
            sim = None
            if src["type"] == "simulator":
                sim = start_simulator(make_simulator(src, path=where, resolve=cfg.resolve), where)
                app.simulators[src["name"]] = sim
            app.venues[src["name"]] = make_venue(src, sim, path=where)
        register_instruments(cfg, app.registry, app.venues)
        e = cfg.engine
        builder = EngineBuilder(app.registry)
        Recorder = None
        if record and record.get("journal"):
            from extrema.storage import Recorder
        for name, venue in app.venues.items():
            for src in venue.sources():
                if Recorder is not None and src is venue.market_data:
                    journal = cfg.resolve(record["journal"])
                    if len(app.venues) > 1:
                        journal = journal / name
                    rec = Recorder(src, journal, raw_jsonl=record.get("raw_jsonl"))
                    app.recorders.append(rec)
                    builder.channel(rec)
                else:
                    builder.channel(src)
            client = venue.execution_client()
            if client is not None:
                for market in venue.markets():
                    builder.execution(client, market)
        if e["cpu"] is not None:
            builder.pin(e["cpu"])
        builder.ring(cfg.delivery["ring_capacity"], cfg.delivery["ring_name"])
        builder.on_error(e["on_error"])
        builder.options(busy_poll=e["busy_poll"], warm_up=e["warm_up"], use_uvloop=e["use_uvloop"], pnl_method=e["pnl_method"],
                        risk_interval=e["risk_interval"], stop_when_sources_done=False)
        from_config = strategies is None
        if from_config:
            if need_strategies and not cfg.strategies:
                raise ConfigError("strategies", "the config has no [[strategies]]: add at least one "
                                                "(class = \"package.module:Class\")")
            strategies = []
            for i, spec in enumerate(cfg.strategies):
                where = f"strategies[{i}]"
                subscribe = {find_instrument(app.registry, name, f"{where}.subscribe.{name}"): kinds
                             for name, kinds in spec["subscribe"].items()}
                strategies.append((make_strategy(spec, where, search_dir=cfg.path.parent if cfg.path else None),
                                   subscribe))
        names = [s.name for s, _ in strategies]
        for i, n in enumerate(names):
            if names.index(n) != i:
                raise ConfigError(f"strategies[{i}].name", f"two strategies are named {n!r}: give one a name = \"...\"")
        for strategy, subscribe in strategies:
            builder.strategy(strategy, subscribe=subscribe)
            app.strategies.append(strategy)
        try:
            app.engine = builder.build()
        except ValueError as e:
            raise ConfigError("engine", str(e)) from None
        apply_limits(app.engine, cfg.risk)
        for i, spec in enumerate(cfg.strategies if from_config else []):
            apply_limits(app.engine, spec["risk"], strategy=i, where=f"strategies[{i}].risk")
        return app
    except BaseException:
        app.close()
        raise
