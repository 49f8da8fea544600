"""The subcommands of `extrema` (see extrema.cli.main for their options)."""
from __future__ import annotations

import inspect
import json
import logging
import sys
import time
import tomllib
from pathlib import Path

from extrema.cli.main import UsageError
from extrema.config import SUBSCRIPTION_KINDS, Config, ConfigError, load, parse

log = logging.getLogger("extrema.cli")


def _say(*parts):
    print(*parts, flush=True)


def _check_duration(value, what="--duration"):
    if value is not None and not value > 0:
        raise UsageError(f"{what} must be > 0 seconds, got {value}")


def _write_report(engine, tape, out, **meta):
    """The backtest-style report of a live run into `out`; returns the directory."""
    from extrema.cli.report import result_from_engine
    return Path(result_from_engine(engine, tape, **meta).write(out))


def _run_engine(app, *, duration, summary, report=None, report_meta=None):
    """Start the engine, show the summary until the duration / Ctrl-C / the engine stops, stop it."""
    from extrema.cli.report import LiveTape
    engine = app.engine
    tape = LiveTape(engine) if report else None
    interrupted = False
    engine.start()
    try:
        if summary is not None:
            summary.wait(duration, stop=lambda: engine.wait(0))
        else:
            engine.wait(duration)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        engine.stop("time is up" if not interrupted else "Ctrl-C")
        if summary is not None:
            summary.tick(force=True)
        if tape is not None:
            tape.close()
    if engine.error is not None:
        raise RuntimeError(f"the engine stopped on an internal error: {engine.error!r}")
    written = _write_report(engine, tape, report, **(report_meta or {})) if report else None
    return interrupted, written


def _engine_counters(engine, venues):
    stats = engine.stats()
    d = stats["dispatcher"]
    lines = [f"engine: {stats['published']:,} records, {d['delivered']:,} delivered, hook errors {d['hook_errors']}, "
             f"book errors {d['book_errors']}, stop: {stats['stop_reason']}"]
    for name, v in venues.items():
        md = v.market_data.stats()
        line = (f"{name}: frames {md['decoder']['frames']:,}, dropped {md['decoder']['dropped']}, "
                f"snapshots {md['snapshots']}, resyncs {md['resyncs']}")
        if v.execution is not None:
            ex = v.execution.stats()
            line += f"; {ex['submitted']} orders sent over the WebSocket API, {ex['rejected']} rejected"
        lines.append(line)
    return lines


# ---- demo -------------------------------------------------------------------------------------------------

def cmd_demo(args):
    _check_duration(args.duration)
    if not args.speed > 0:
        raise UsageError(f"--speed must be > 0, got {args.speed}")
    if not args.debug:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        # the first reconciliation adopts the simulator's starting balances: expected, not news here
        logging.getLogger("extrema.reconcile").setLevel(logging.ERROR)
    from extrema import EngineBuilder, InstrumentRegistry
    from extrema.adapters.binance.venue import BinanceVenue
    from extrema.cli.build import App
    from extrema.cli.display import LiveSummary
    from extrema.examples import EmaCross, MarketMaker, Monitor
    from extrema.sim import BinanceSimulator, GeneratedMarket

    try:
        market = GeneratedMarket(seed=args.seed, symbols=[args.symbol], speed=args.speed)
    except (ValueError, KeyError) as e:
        raise UsageError(f"--symbol {args.symbol!r}: {e}") from None
    sim = BinanceSimulator(market=args.market, source=market).start_in_thread()
    app = App(engine=None, registry=InstrumentRegistry(), simulators={"sim": sim})
    try:
        venue = BinanceVenue.for_simulator(sim)
        app.venues["simulator"] = venue
        (inst,) = venue.load_instruments(app.registry, [args.symbol])
        _say(f"simulator: REST {sim.rest_url}, streams {sim.ws_url}; trading {inst.name} on {inst.market.name} "
             f"(tick {inst.tick_size}, lot {inst.lot_size}) for {args.duration:g} s")
        mm, ema = MarketMaker(inst), EmaCross(inst)
        monitor = Monitor(inst, [mm, ema])
        app.engine = (EngineBuilder(app.registry).venue(venue).strategy(mm).strategy(ema).strategy(monitor)
                      .options(stop_when_sources_done=False).build())
        summary = LiveSummary(app.engine, [venue], tty=False if args.plain else None)
        interrupted, written = _run_engine(
            app, duration=args.duration, summary=summary, report=None if args.no_report else args.out,
            report_meta={"command": "extrema demo", "market": args.market, "symbol": args.symbol,
                         "seed": args.seed})
        _say("")
        for line in _engine_counters(app.engine, app.venues):
            _say(line)
        _say(f"book resets seen by the monitor: {monitor.resets}")
        if written is not None:
            _say(f"report: {written}/ (open {written / 'report.html'})")
        d = app.engine.stats()["dispatcher"]
        if d["hook_errors"] or d["book_errors"]:
            _say("the demo saw errors (see the log above)")
            return 1
        return 130 if interrupted else 0
    finally:
        app.close()


# ---- sim ----------------------------------------------------------------------------------------------------

def cmd_sim(args):
    _check_duration(args.duration)
    from extrema.cli.build import make_simulator, start_simulator
    from extrema.config import parse
    src = {"type": "simulator", "market": args.market, "speed": args.speed, "port": args.port,
           "faults": {k: getattr(args, k) for k in ("drop_rate", "duplicate_rate", "reorder_rate", "gap_rate",
                                                    "malformed_rate", "disconnect_rate", "latency_ms", "jitter_ms")},
           }
    src["faults"].update({"http_429_rate": args.http_429_rate, "http_418_rate": args.http_418_rate,
                          "seed": args.fault_seed})
    if args.capture:
        src["data"] = args.capture
        if args.capture_http:
            src["http"] = args.capture_http
        src["loop"] = args.loop
        if args.symbols != "BTCUSDT":
            raise UsageError("--symbols applies to a generated market; a capture replays its own symbols")
    else:
        if args.capture_http or args.loop:
            raise UsageError("--capture-http and --loop need --capture WS_JSONL")
        src["symbols"] = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        src["seed"] = args.seed
    flags = {"speed": "--speed", "port": "--port", "faults": "a fault option", "symbols": "--symbols",
             "data": "--capture", "http": "--capture-http", "market": "--market"}
    if not args.debug:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = parse({"sources": [src]})
        sim = start_simulator(make_simulator(cfg.sources[0], path="sources[0]", resolve=Path), "sources[0]")
    except ConfigError as e:
        key = e.path.split(".")[1].split("[")[0] if "." in e.path else ""
        flag = flags.get(key, key or "options")
        if key == "faults":
            flag = "--" + e.path.split(".")[-1].replace("_", "-")
        raise UsageError(f"{flag}: {e.message}") from None
    from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET
    api = "/ws-api/v3" if args.market == "spot" else "/ws-fapi/v1"
    symbols = ", ".join(s.symbol for s in sim.specs)
    _say(f"Binance {args.market} simulator ({'capture replay' if args.capture else 'generated market'}: {symbols})")
    _say(f"  REST            {sim.rest_url}")
    _say(f"  market streams  {sim.ws_url}/stream?streams=<symbol>@depth/<symbol>@trade  (or /ws/<stream>)")
    _say(f"  WebSocket API   {sim.ws_url}{api}")
    _say(f"  API key         {DEFAULT_API_KEY}")
    _say(f"  API secret      {DEFAULT_API_SECRET}  (HMAC-SHA256)")
    _say("  Ctrl-C to stop" if args.duration is None else f"  stopping after {args.duration:g} s")
    try:
        if args.duration is None:
            while True:
                time.sleep(3600)
        time.sleep(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        counters = dict(sim.counters)
        faults = dict(sim.faults.counters)
        sim.stop_thread()
    _say(f"stopped; served {json.dumps(counters, sort_keys=True)}" + (f", faults {json.dumps(faults)}" if faults else ""))
    return 0


def _build(cfg, **kw):
    from extrema.cli.build import build_engine
    try:
        return build_engine(cfg, **kw)
    except ConfigError as e:
        raise (e.in_file(cfg.path) if e.file is None and cfg.path is not None else e) from None


# ---- run ----------------------------------------------------------------------------------------------------

def cmd_run(args):
    _check_duration(args.duration)
    cfg = load(args.config)
    from extrema.cli.build import build_engine, setup_logging
    from extrema.cli.display import LiveSummary
    setup_logging(cfg.logging, debug=args.debug)
    duration = args.duration if args.duration is not None else (cfg.engine["duration"] or None)
    storage = cfg.storage
    app = _build(cfg, record=storage if storage.get("journal") else None)
    try:
        inst = ", ".join(f"{i.name} ({i.market.name})" for i in app.registry)
        _say(f"extrema run {args.config}: {len(app.strategies)} strategies on {inst}; "
             f"{'until Ctrl-C' if duration is None else f'{duration:g} s'}")
        for name, sim in app.simulators.items():
            _say(f"  {name}: simulator REST {sim.rest_url}, streams {sim.ws_url}")
        summary = None if args.quiet else LiveSummary(app.engine, app.venues.values(),
                                                      tty=False if args.plain else None)
        interrupted, written = _run_engine(app, duration=duration, summary=summary, report=args.report,
                                           report_meta={"command": f"extrema run {args.config}"})
        for line in _engine_counters(app.engine, app.venues):
            _say(line)
        if storage.get("parquet"):
            _export_parquet(cfg.resolve(storage["journal"]), cfg.resolve(storage["parquet"]))
        if written is not None:
            _say(f"report: {written}/")
        return 130 if interrupted else 0
    finally:
        app.close()


def _export_parquet(journal, out):
    from extrema.storage import export_parquet
    export_parquet(journal, out)
    _say(f"parquet: {out}")


# ---- record -------------------------------------------------------------------------------------------------

def _record_strategy(kinds):
    from extrema import Strategy

    class Subscriber(Strategy):
        """Subscribes to `kinds` of every instrument so the sources stream them; counts what arrives."""

        def __init__(self):
            super().__init__("recorder")
            self.seen = 0
            self.instruments = []            # set once the engine's instruments are loaded

        def on_start(self):
            for inst in self.instruments:
                self.context.subscribe(inst, *kinds)

        def on_trade(self, view):
            self.seen += 1

        def on_book(self, view):
            self.seen += 1

        def on_quote(self, view):
            self.seen += 1

    return Subscriber()


def cmd_record(args):
    _check_duration(args.duration)
    kinds = [k.strip() for k in args.streams.split(",") if k.strip()]
    recordable = [k for k in SUBSCRIPTION_KINDS if k not in ("orders", "fills")]
    for k in kinds:
        if k not in recordable:
            raise UsageError(f"--streams: {k!r} is not one of {', '.join(recordable)}")
    if args.config and args.sim:
        raise UsageError("give a CONFIG.toml or --sim, not both")
    if args.config:
        cfg = load(args.config)
    elif args.sim:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        try:
            cfg = parse({"sources": [{"type": "simulator", "market": args.sim, "symbols": symbols, "seed": args.seed}]})
        except ConfigError as e:
            raise UsageError(f"--symbols: {e.message}") from None
    else:
        raise UsageError("what to record: a CONFIG.toml (its [[sources]]) or --sim spot|usdm")
    storage = dict(cfg.storage)
    if args.out:
        storage["journal"] = str(Path(args.out).resolve())
    if args.raw_jsonl:
        storage["raw_jsonl"] = str(Path(args.raw_jsonl).resolve())
    if args.parquet:
        storage["parquet"] = str(Path(args.parquet).resolve())
    if not storage.get("journal"):
        raise UsageError("where to record: --out DIR (or storage.journal in the config)")
    from extrema.cli.build import build_engine, setup_logging
    setup_logging(cfg.logging, debug=args.debug)
    duration = args.duration if args.duration is not None else (cfg.engine["duration"] or None)
    sub = _record_strategy(kinds)
    app = _build(cfg, strategies=[(sub, {})], record=storage)
    sub.instruments = list(app.registry)
    try:
        _say(f"recording {', '.join(kinds)} of {', '.join(i.name for i in app.registry)} into {storage['journal']}"
             f" ({'until Ctrl-C' if duration is None else f'{duration:g} s'})")
        interrupted, _ = _run_engine(app, duration=duration, summary=None)
        _say(f"recorded: {sub.seen:,} market events, {app.engine.published:,} records")
        for rec in app.recorders:
            st = rec.stats
            _say(f"  {st['records']:,} records into {st['journal']}"
                 + (f", {st['raw_frames']:,} raw frames into {st['raw_jsonl']}" if st["raw_jsonl"] else ""))
        if storage.get("parquet"):
            _export_parquet(cfg.resolve(storage["journal"]), cfg.resolve(storage["parquet"]))
        return 130 if interrupted else 0
    finally:
        app.close()


# ---- backtest -----------------------------------------------------------------------------------------------

def _param(text):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--param {text!r}: write KEY=VALUE")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value                                   # a bare word: a string
    return key.strip(), parsed


def _instrument_arg(text):
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise UsageError(f"--instrument {text!r}: write NAME:MARKET:TICK:LOT[:MIN_NOTIONAL], "
                         "e.g. BTC_USDT:BINANCE_SPOT:0.01:0.00001:5")
    spec = dict(zip(("name", "market", "tick_size", "lot_size", "min_notional"), parts))
    return spec


def _pair(text, flag, cast, n):
    try:
        values = [cast(x) for x in text.split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise UsageError(f"{flag} {text!r}: write {n} comma-separated numbers")
    return values


def backtest_config(args) -> Config:
    """The validated config of `extrema backtest`: the file (if any) with the command line's overrides."""
    data = {}
    if args.config:
        path = Path(args.config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("", f"no such config file: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError("", f"not valid TOML: {e}", file=str(path)) from None
    bt = dict(data.get("backtest", {})) if isinstance(data.get("backtest", {}), dict) else data.get("backtest")
    if isinstance(bt, dict):
        if args.data:
            bt["data"] = [str(Path(p).resolve()) for p in args.data]
        if args.out:
            bt["out"] = str(Path(args.out).resolve())
        if args.realtime:
            bt["realtime"] = True
        if args.speed is not None:
            if not args.realtime and not bt.get("realtime"):
                raise UsageError("--speed paces a --realtime replay: add --realtime")
            bt["speed"] = args.speed
        if args.no_progress:
            bt["progress"] = False
        if args.fees:
            maker, taker = _pair(args.fees, "--fees", float, 2)
            bt["fees"] = {"maker": maker, "taker": taker}
        if args.latency_us:
            feed, entry, response = _pair(args.latency_us, "--latency-us", int, 3)
            bt["latency"] = {"model": "constant", "feed_us": feed, "entry_us": entry, "response_us": response}
        data["backtest"] = bt
    if args.instrument:
        data["instruments"] = list(data.get("instruments", [])) + [_instrument_arg(t) for t in args.instrument]
    if args.param and not args.strategy:
        raise UsageError("--param sets a parameter of a --strategy: give --strategy MODULE:CLASS first")
    if args.strategy:
        strategies = [{"class": c, "params": {}} for c in args.strategy]
        for p in args.param or []:
            k, v = _param(p)
            strategies[-1]["params"][k] = v
        data["strategies"] = strategies
    data.pop("sources", None)                            # a backtest replays data; live sources do not apply
    data.pop("venue", None)
    try:
        cfg = parse(data, path=args.config)
    except ConfigError as e:
        raise e.in_file(args.config) if args.config else e
    if not cfg.backtest["data"]:
        raise UsageError("no data to replay: --data PATH (or backtest.data in the config)")
    for i, p in enumerate(cfg.backtest["data"]):
        if not cfg.resolve(p).exists():
            raise ConfigError(f"backtest.data[{i}]", f"no such file or directory: {cfg.resolve(p)}")
    if not cfg.strategies:
        raise UsageError("no strategies: --strategy MODULE:CLASS (or [[strategies]] in the config)")
    if not cfg.instruments and not _journal_instruments(cfg):
        raise UsageError("no instruments: --instrument NAME:MARKET:TICK:LOT[:MIN_NOTIONAL] "
                         "(or [[instruments]] with name / market / tick_size / lot_size; a journal the "
                         "recorder wrote brings its own)")
    for i, spec in enumerate(cfg.instruments):
        if "symbol" in spec:
            raise ConfigError(f"instruments[{i}].symbol", "a backtest has no venue to load it from: give name, "
                                                          "market, tick_size, lot_size (and min_notional)")
    if cfg.backtest["report"] and not args.no_report and not cfg.backtest["out"]:
        raise UsageError("where to write the report: --out DIR (or backtest.out; --no-report for stats only)")
    return cfg


def _journal_instruments(cfg):
    """The first data path that is a journal with an instrument table when every data path is one (then the
    backtest needs no --instrument), else None."""
    paths = [cfg.resolve(p) for p in cfg.backtest["data"]]
    if paths and all((p / "instruments.json").is_file() for p in paths):
        return paths[0]
    return None


def _model(module, kind, spec, names, where):
    cls = getattr(module, names[spec["model"]])
    try:
        inspect.signature(cls).bind(**spec["params"])
    except TypeError as e:
        raise ConfigError(where, f"{names[spec['model']]}: {e}") from None
    return cls(**spec["params"])


def cmd_backtest(args):
    cfg = backtest_config(args)
    from extrema import InstrumentRegistry
    from extrema.cli.build import apply_limits, find_instrument, make_strategy, register_instruments, setup_logging
    setup_logging(cfg.logging, debug=args.debug)
    import extrema.backtest as bt_mod
    from extrema.backtest import Backtest
    from extrema.backtest.sources import open_source
    b = cfg.backtest
    journal = _journal_instruments(cfg) if not cfg.instruments else None
    if journal is not None:
        from extrema.storage import registry_for_journal
        registry = registry_for_journal(journal)         # the ids its records use; other journals must agree
    else:
        registry = InstrumentRegistry()
        register_instruments(cfg, registry, {})
    sources = []
    for i, p in enumerate(b["data"]):
        try:
            sources.append(open_source(cfg.resolve(p), registry))
        except (ValueError, OSError) as e:
            raise ConfigError(f"backtest.data[{i}]", str(e)) from None
    here = cfg.path.parent if cfg.path else None
    strategies = []
    for i, spec in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        subscribe = {find_instrument(registry, name, f"{where}.subscribe.{name}"): kinds
                     for name, kinds in spec["subscribe"].items()}
        strategies.append((make_strategy(spec, where, search_dir=here), subscribe))
    latency = _model(bt_mod, "latency", b["latency"], {"constant": "ConstantLatency", "data": "DataLatency"},
                     "backtest.latency")
    queue = _model(bt_mod, "queue", b["queue"], {"conservative": "ConservativeQueue",
                                                 "probabilistic": "ProbabilisticQueue"}, "backtest.queue")
    kw = {"latency": latency, "queue": queue, "balances": b["balances"], "equity_interval_us": b["equity_interval_us"],
          "progress": b["progress"] and sys.stderr.isatty(), "pnl_method": cfg.engine["pnl_method"],
          "on_error": cfg.engine["on_error"], "realtime": b["realtime"], "speed": b["speed"]}
    if b["fees"] is not None:
        fees = b["fees"]
        if "instruments" in fees:
            kw["fees"] = {name: bt_mod.Fees(maker=f["maker"], taker=f["taker"]) for name, f in fees["instruments"].items()}
        else:
            kw["fees"] = bt_mod.Fees(maker=fees.get("maker", 0.0), taker=fees.get("taker", 0.0))

    def risk(engine):
        apply_limits(engine, cfg.risk)
        for i, spec in enumerate(cfg.strategies):
            apply_limits(engine, spec["risk"], strategy=i, where=f"strategies[{i}].risk")

    kw["risk"] = risk
    backtest = Backtest(registry, sources if len(sources) > 1 else sources[0], strategies, **kw)
    result = backtest.run()
    from extrema.backtest.stats import summary_text
    _say(summary_text(result.stats()))
    for path, src in zip(cfg.backtest["data"], sources):
        dropped = src.stats.get("dropped")
        if dropped:
            _say(f"{path}: dropped {dropped} (see the log for the first of each)")
    if b["report"] and not args.no_report:
        out = result.write(cfg.resolve(b["out"]))
        _say(f"report: {out or b['out']}/")
    return 0


# ---- bench --------------------------------------------------------------------------------------------------

def benches_dir() -> Path | None:
    """benches/ of a source checkout: the one extrema runs from (an editable install), else the one the
    current directory is in (a checkout with the package installed normally), else None."""
    import extrema
    places = [Path(extrema.__file__).resolve().parents[2], *(d for d in [Path.cwd(), *Path.cwd().parents])]
    for root in places:
        run = root / "benches" / "run.py"
        if run.is_file() and (root / "src" / "extrema").is_dir():
            return run.parent
    return None


def cmd_bench(args):
    import subprocess
    benches = benches_dir()
    if benches is None:
        _say("The benchmarks are not part of the installed package: they live in the source repository's "
             "benches/ directory. Run extrema bench from inside a checkout, or python benches/run.py SUITE.")
        return 2
    suites = sorted(p.stem for p in (benches / "suites").glob("*.py") if not p.stem.startswith("_"))
    if args.suite is None:
        _say(f"suites in {benches}: {', '.join(suites)}")
        _say("run one: extrema bench SUITE [--quick] [--repeats N] [--install-peers]")
        return 0
    if args.suite not in suites:
        from extrema.config import _did_you_mean
        raise UsageError(f"no suite {args.suite!r}{_did_you_mean(args.suite, suites)}; suites: {', '.join(suites)}")
    return subprocess.call([sys.executable, str(benches / "run.py"), args.suite, *args.args])
