"""The `extrema` command: argument parsing, error reporting and the dispatch to each subcommand."""
from __future__ import annotations

import argparse
import logging
import sys
import textwrap

from extrema.config import ConfigError

PROG = "extrema"


class UsageError(Exception):
    """A command-line problem the user fixes by changing the command (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=100)


DESCRIPTION = """\
extrema - a low-latency trading engine for Python with a compiled core.

Start here:
  extrema demo                      paper trading on the bundled Binance simulator (20 s), with a
                                    live summary and a backtest-style report at the end
  extrema sim                       just the simulator: a local Binance to point your own code at
  extrema run examples/config.toml  your strategies, sources, risk limits from a config file
"""

EPILOG = """\
examples:
  extrema demo --duration 60 --out report/       a minute of the demo, report into report/
  extrema sim --market usdm --symbols BTCUSDT,ETHUSDT --gap-rate 0.01
  extrema run config.toml --duration 300         five minutes, then a clean stop (or Ctrl-C)
  extrema record --sim spot --out journal/ --duration 60
  extrema backtest config.toml --data captures/btcusdt.jsonl --out bt-report/
  extrema bench book --quick                     (from a source checkout)

Every command has its own --help. Exit codes: 0 ok, 1 the run failed, 2 a usage or config error.
Add --debug to any command for DEBUG logs and full tracebacks."""


def _common():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", help="DEBUG logging and full tracebacks on errors")
    return p


def _faults(p):
    g = p.add_argument_group("faults (probabilities per frame or request, 0..1)")
    for name in ("drop", "duplicate", "reorder", "gap", "malformed", "disconnect", "http-429", "http-418"):
        g.add_argument(f"--{name}-rate", type=float, default=0.0, metavar="P",
                       help=f"{name.replace('-', ' ')} faults: see extrema.sim.faults")
    g.add_argument("--latency-ms", type=float, default=0.0, metavar="MS", help="delay every frame and reply")
    g.add_argument("--jitter-ms", type=float, default=0.0, metavar="MS", help="plus up to this much, uniformly")
    g.add_argument("--fault-seed", type=int, default=0, metavar="N", help="seed of the fault draws")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter,
                     parents=[common])
    from extrema import __version__
    parser.add_argument("--version", action="version", version=f"extrema {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name, help, description, epilog):
        return sub.add_parser(name, help=help, description=textwrap.dedent(description),
                              epilog=textwrap.dedent(epilog), formatter_class=_Formatter, parents=[common])

    # ---- demo -------------------------------------------------------------------------------------
    p = add("demo", "paper trading on the bundled simulator, live summary, report at the end", """\
        Starts the bundled Binance simulator with generated market data (a queue-reactive order-book
        model) on 127.0.0.1, and one engine with three example strategies (extrema.examples): a market
        maker, an EMA crossover and a monitor, trading over Binance's own protocols. A live summary
        shows each strategy's orders, fills, position and P&L; at the end the run is written as a
        backtest-style report (orders.csv, fills.csv, equity.csv, stats.json, equity.png, report.html).
        Needs nothing but the installed package: no network, no keys.""", """\
        examples:
          extrema demo                               20 s, report into ./extrema-demo/
          extrema demo --duration 60 --market usdm   a minute on the USD-M (perpetuals) simulator
          extrema demo --no-report > demo.log        summary lines only (no terminal redraw when piped)""")
    p.add_argument("--duration", type=float, default=20.0, metavar="S", help="seconds to run (default 20)")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot", help="simulated market (default spot)")
    p.add_argument("--symbol", default="BTCUSDT", help="Binance symbol to trade (default BTCUSDT)")
    p.add_argument("--seed", type=int, default=1, help="market model seed (default 1)")
    p.add_argument("--speed", type=float, default=3.0, help="simulated time per wall second (default 3)")
    p.add_argument("--out", default="extrema-demo", metavar="DIR", help="report directory (default ./extrema-demo)")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument("--plain", action="store_true", help="summary as periodic lines even on a terminal")

    # ---- sim --------------------------------------------------------------------------------------
    p = add("sim", "run the bundled Binance simulator in the foreground", """\
        Runs a simulated Binance market (spot or USD-M) on 127.0.0.1 until Ctrl-C: REST API, market
        streams, WebSocket API and user data streams, over a matching engine fed by generated market
        data or by a capture replay, with switchable faults. Prints its URLs and the API key / secret
        it accepts; point BinanceVenue (or any Binance client) at them.""", """\
        examples:
          extrema sim                                         spot BTCUSDT, generated, any free ports
          extrema sim --market usdm --symbols BTCUSDT,ETHUSDT --port 18000
          extrema sim --capture ws.jsonl --capture-http http.jsonl --loop
          extrema sim --gap-rate 0.01 --drop-rate 0.001 --latency-ms 5
        In Python: BinanceVenue(market, credentials=BinanceCredentials(KEY, secret=SECRET),
        rest_url=REST, ws_url=WS, ws_api_url=WS + "/ws-api/v3")  (USD-M: "/ws-fapi/v1").""")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot", help="default spot")
    p.add_argument("--symbols", default="BTCUSDT", help="comma-separated symbols of a generated market")
    p.add_argument("--seed", type=int, default=1, help="market model seed")
    p.add_argument("--speed", type=float, default=1.0, help="simulated time per wall second (replay: speed-up)")
    p.add_argument("--capture", metavar="WS_JSONL", help="replay this websocket capture instead of generating")
    p.add_argument("--capture-http", metavar="HTTP_JSONL", help="the capture's REST side (depth snapshots)")
    p.add_argument("--loop", action="store_true", help="start the capture over at its end")
    p.add_argument("--port", type=int, default=0, help="REST on PORT, websockets on PORT+1 (default: any free)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    _faults(p)

    # ---- run --------------------------------------------------------------------------------------
    p = add("run", "run the engine described by a config.toml", """\
        Builds an engine from CONFIG (sources, instruments, strategies, risk limits, logging; see
        examples/config.toml, every key documented) and runs it until Ctrl-C or the duration. The
        config is validated first: any bad field is reported with its key path and exit code 2.""", """\
        examples:
          extrema run examples/config.toml --duration 5      a few seconds on the bundled simulator
          extrema run live.toml --report run-report/          write the run as a report at the end
        API keys are never in the file: the config names environment variables (api_key_env, ...).""")
    p.add_argument("config", metavar="CONFIG.toml", help="the configuration file")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to run (overrides engine.duration; default: until Ctrl-C)")
    p.add_argument("--report", metavar="DIR", help="write a backtest-style report of the run to DIR")
    p.add_argument("--quiet", action="store_true", help="no live summary")
    p.add_argument("--plain", action="store_true", help="summary as periodic lines even on a terminal")

    # ---- backtest ---------------------------------------------------------------------------------
    p = add("backtest", "run strategies over recorded data", """\
        Runs the strategies of CONFIG (or --strategy) over recorded data through the same engine, risk
        and portfolio as live, against a simulated exchange (latency, queue position, fees from the
        config's [backtest] section), and writes the report (orders, fills, equity, statistics, plots).
        Data: Binance capture JSONL, event JSONL, a journal directory, tardis-style CSV.""", """\
        examples:
          extrema backtest config.toml                             [backtest].data, into [backtest].out
          extrema backtest config.toml --data day1.jsonl --data day2.jsonl --out bt/
          extrema backtest --instrument BTC_USDT:BINANCE_SPOT:0.01:0.00001:5 \\
              --strategy extrema.examples:MarketMaker --param instrument=BTC_USDT --data journal/
          extrema backtest config.toml --realtime --speed 10       paced replay, 10x""")
    p.add_argument("config", metavar="CONFIG.toml", nargs="?", help="configuration file (optional)")
    p.add_argument("--data", action="append", metavar="PATH", help="data file or journal directory (repeatable)")
    p.add_argument("--strategy", action="append", metavar="MODULE:CLASS", help="strategy class (repeatable)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="a constructor parameter of the last --strategy (repeatable; VALUE read as TOML)")
    p.add_argument("--instrument", action="append", metavar="NAME:MARKET:TICK:LOT[:MIN_NOTIONAL]",
                   help="register an instrument (repeatable)")
    p.add_argument("--out", metavar="DIR", help="report directory (overrides backtest.out)")
    p.add_argument("--realtime", action="store_true", help="pace the replay by the data's timestamps")
    p.add_argument("--speed", type=float, metavar="X", help="with --realtime: X times real time")
    p.add_argument("--fees", metavar="MAKER,TAKER", help="fee rates, e.g. 0.0002,0.0005 (overrides backtest.fees)")
    p.add_argument("--latency-us", metavar="FEED,ENTRY,RESPONSE", help="constant latencies in microseconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-report", action="store_true", help="statistics only, no report files")

    # ---- record -----------------------------------------------------------------------------------
    p = add("record", "record market data into a journal", """\
        Records the market data of CONFIG's sources (or of the bundled simulator with --sim) into an
        append-only journal (crash-safe; replay it with `extrema backtest`), optionally the raw
        exchange frames as JSONL and a Parquet export at the end.""", """\
        examples:
          extrema record --sim spot --symbols BTCUSDT,ETHUSDT --out journal/ --duration 60
          extrema record config.toml --out journal/ --parquet book.parquet
          extrema record config.toml --streams book,trades,quotes""")
    p.add_argument("config", metavar="CONFIG.toml", nargs="?", help="configuration file (its sources)")
    p.add_argument("--sim", choices=("spot", "usdm"), help="record the bundled simulator instead of a config")
    p.add_argument("--symbols", default="BTCUSDT", help="with --sim: comma-separated symbols")
    p.add_argument("--seed", type=int, default=1, help="with --sim: market model seed")
    p.add_argument("--out", metavar="DIR", help="journal directory (overrides storage.journal)")
    p.add_argument("--raw-jsonl", metavar="FILE", help="also write the raw exchange frames as JSON lines")
    p.add_argument("--parquet", metavar="FILE", help="export the journal to Parquet at the end")
    p.add_argument("--streams", default="book,trades", help="what to record: comma-separated of "
                   "trades, quotes, book, candles, mark_price (default book,trades)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="seconds (default: until Ctrl-C)")

    # ---- bench ------------------------------------------------------------------------------------
    p = add("bench", "run a benchmark suite (source checkout)", """\
        Runs `python benches/run.py SUITE ...` of the source checkout extrema was installed from
        (figures against peers such as NautilusTrader and hftbacktest, written to benches/results/).
        The benchmarks are not part of the installed package.""", """\
        examples:
          extrema bench                   list the suites
          extrema bench book --quick      a quick run of the order-book suite
          extrema bench backtest --install-peers""")
    p.add_argument("suite", nargs="?", help="suite name (omit to list them)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to benches/run.py (--quick, --repeats N, ...)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from extrema.cli import commands
    try:
        return getattr(commands, f"cmd_{args.command}")(args) or 0
    except (ConfigError, UsageError) as e:
        if debug:
            raise
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        print(f"{PROG} {args.command}: error: {type(e).__name__}: {e} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
