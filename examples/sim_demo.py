"""Paper trading on the bundled Binance simulator: real sockets, real wire formats, real strategies.

    python examples/sim_demo.py [--seconds 20] [--market spot|usdm] [--symbols BTCUSDT,ETHUSDT]

What runs:
* the simulator (extrema.sim) on 127.0.0.1 in its own thread: a queue-reactive order-book model per
  symbol (Huang, Lehalle & Rosenbaum 2015) driving a matching engine, served as Binance's REST API,
  market streams, WebSocket API and user data stream;
* one extrema engine on a pinned thread with the Binance venue pointed at it: market data through the
  compiled decoder and Binance's book-sync rule, orders over the WebSocket API, fills from the user
  data stream - exactly the code path that trades live;
* three strategies sharing that feed: a market maker quoting around the touch with an inventory skew,
  an EMA crossover that crosses the spread on signals, and a monitor that prints a summary line every
  few seconds.
At the end it prints each strategy's orders, fills and position, and the engine's counters.
`extrema demo` runs the same strategies with a live summary and writes a report; this script shows
the few lines it takes to wire them yourself.
"""
import argparse
import logging
import time

from extrema import EngineBuilder, InstrumentRegistry
from extrema.adapters.binance.venue import BinanceVenue
from extrema.examples import EmaCross, MarketMaker, Monitor    # the strategies, shipped in the package
from extrema.sim import BinanceSimulator, GeneratedMarket


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--market", choices=("spot", "usdm"), default="spot")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sim = BinanceSimulator(market=args.market, source=GeneratedMarket(seed=args.seed, symbols=[args.symbol],
                                                                      speed=3.0)).start_in_thread()
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, [args.symbol])
        print(f"simulator: REST {sim.rest_url}, streams {sim.ws_url}; trading {inst.name} on {inst.market.name} "
              f"(tick {inst.tick_size}, lot {inst.lot_size})", flush=True)
        mm, ema = MarketMaker(inst), EmaCross(inst)
        monitor = Monitor(inst, [mm, ema], every=5.0)
        engine = (EngineBuilder(registry).venue(venue)
                  .strategy(mm)                    # each subscribes to what it needs in on_start
                  .strategy(ema)
                  .strategy(monitor)
                  .options(stop_when_sources_done=False)
                  .build())
        engine.start()
        time.sleep(args.seconds)
        engine.stop("demo time is up")
        book = engine.dispatcher.book(inst.id)
        mid = (book.best_bid + book.best_ask) / 2
        print("\nsummary")
        for t in (mm, ema):
            print(f"  {t.name:13s} orders {t.me.orders:5d}  fills {t.me.fills:4d}  rejected {t.me.rejects:3d}  "
                  f"position {t.me.position:+.5f}  P&L at mid {t.me.pnl(mid):+.2f}")
        stats = engine.stats()
        md = venue.market_data.stats()
        print(f"  engine        records {stats['published']:,}  delivered {stats['dispatcher']['delivered']:,}  "
              f"hook errors {stats['dispatcher']['hook_errors']}  book errors {stats['dispatcher']['book_errors']}")
        print(f"  market data   frames {md['decoder']['frames']:,}  dropped {md['decoder']['dropped']}  "
              f"snapshots {md['snapshots']}  resyncs {md['resyncs']}  book resets seen {monitor.resets}")
        print(f"  execution     {venue.execution.stats()['submitted']} orders sent over the WebSocket API, "
              f"{venue.execution.stats()['rejected']} rejected")
        if stats["dispatcher"]["hook_errors"] or stats["dispatcher"]["book_errors"]:
            raise SystemExit("the demo saw errors (see above)")
    finally:
        sim.stop_thread()


if __name__ == "__main__":
    main()
