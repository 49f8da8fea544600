"""Record, backtest, sweep: the research loop on the code that trades.

    python examples/backtest_sweep.py [--seconds 20] [--out sweep/] [--processes 2]

1. Records `--seconds` of the bundled simulator's generated BTCUSDT market (the queue-reactive model,
   sped up) into a journal, the way `extrema record` does: the Binance market-data source wrapped in a
   Recorder, the engine subscribing to the book and trades.
2. Backtests the package's MarketMaker (the very class `extrema demo` runs on paper) over that journal
   for a grid of parameters, one backtest per process (extrema.backtest.sweep), with order-entry
   latency, a probabilistic queue position and maker / taker fees.
3. Prints the runs as one table sorted by P&L, writes it as CSV and writes the full report (orders,
   fills, equity, statistics, plot, HTML) of the best run.
"""
import argparse
import tempfile
import time
from pathlib import Path

from extrema import EngineBuilder, InstrumentRegistry, Strategy
from extrema.adapters.binance.venue import BinanceVenue
from extrema.backtest import Backtest, ConstantLatency, Fees, ProbabilisticQueue, sweep, sweep_table
from extrema.backtest.sources import JournalSource
from extrema.examples import MarketMaker
from extrema.sim import BinanceSimulator, GeneratedMarket
from extrema.storage import Recorder


class Subscriber(Strategy):
    """Asks the feed for what the journal should hold; trades nothing."""

    def __init__(self, instrument):
        super().__init__("recorder")
        self.instrument = instrument

    def on_start(self):
        self.context.subscribe(self.instrument, "book", "trades")


def record(journal: Path, seconds: float, seed: int) -> None:
    sim = BinanceSimulator(market="spot", source=GeneratedMarket(seed=seed, symbols=["BTCUSDT"], speed=20.0))
    sim.start_in_thread()
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
        recorder = Recorder(venue.market_data, journal)       # writes instruments.json beside the segments
        engine = (EngineBuilder(registry).channel(recorder).strategy(Subscriber(inst.name))
                  .options(stop_when_sources_done=False).build())
        engine.start()
        time.sleep(seconds)
        engine.stop("recorded long enough")
        print(f"recorded {recorder.stats['records']:,} records of {inst.name} into {journal}", flush=True)
    finally:
        sim.stop_thread()


def run_one(journal, edge, every):
    """One backtest; a top-level function, so the sweep's worker processes can import it."""
    source = JournalSource(journal)                   # the journal's own instrument table
    (inst,) = list(source.registry)
    return Backtest(source.registry, source, [MarketMaker(inst.name, edge=edge, every=every)],
                    latency=ConstantLatency(feed_us=300, entry_us=800, response_us=800),
                    queue=ProbabilisticQueue(), fees=Fees(maker=0.0001, taker=0.0004),
                    balances={"USDT": 100_000, "BTC": 1}).run()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to record (default 20)")
    parser.add_argument("--out", type=Path, default=Path("sweep"), help="where the table and the report go")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: CPUs)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal"
        record(journal, args.seconds, args.seed)
        grid = {"journal": [str(journal)], "edge": [0, 1, 3], "every": [0.05, 0.5]}
        rows = sweep(run_one, grid, processes=args.processes)
        for row in rows:
            row.pop("journal", None)
        args.out.mkdir(parents=True, exist_ok=True)
        sweep_table(rows, args.out / "sweep.csv", sort_by="pnl",
                    columns=["edge", "every", "pnl", "fees", "orders", "trades", "fill_ratio_orders", "maker_share",
                             "max_drawdown", "latency_p50_us", "error"])
        failed = [r for r in rows if r.get("error")]
        if failed:
            raise SystemExit(f"{len(failed)} runs failed: {failed[0]['error']}")
        best = max(rows, key=lambda r: r["pnl"])
        report = run_one(str(journal), best["edge"], best["every"]).write(args.out / "best")
        print(f"{len(rows)} backtests; best edge={best['edge']} every={best['every']}: P&L {best['pnl']:+.4f}; "
              f"table {args.out / 'sweep.csv'}, report {report}/report.html")


if __name__ == "__main__":
    main()
