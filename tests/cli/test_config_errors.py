"""Every bad field of a config.toml is refused with its key path and what is allowed (exit code 2, one line).

The table runs `extrema run BAD.toml` in-process (the same main() the console script calls); one row
also runs as a subprocess to check the exit code and that no traceback reaches the user.
"""
import subprocess
import sys

import pytest

from extrema.cli import main
from extrema.config import ConfigError, parse

SIM = """
[[sources]]
name = "sim"
type = "simulator"
symbols = ["BTCUSDT"]
"""
STRAT = """
[[strategies]]
class = "extrema.examples:MarketMaker"
params = { instrument = "BTC_USDT" }
"""

BAD = [
    ("unknown section", "[engin]\ncpu = 0\n" + SIM + STRAT, "engin: unknown key (did you mean 'engine'?)"),
    ("error policy", "[engine]\non_error = \"explode\"\n" + SIM + STRAT,
     "engine.on_error: must be one of 'continue', 'disable', 'stop', got 'explode'"),
    ("cpu not ours", "[engine]\ncpu = 4095\n" + SIM + STRAT, "engine.cpu: this process may run on CPUs"),
    ("duration negative", "[engine]\nduration = -1\n" + SIM + STRAT, "engine.duration: must be a number >= 0, got -1"),
    ("no sources", STRAT, "sources: the config has no [[sources]]"),
    ("source type missing", "[[sources]]\nmarket = \"spot\"\n" + STRAT, "sources[0].type: is required"),
    ("source market", SIM.replace('type = "simulator"', 'type = "simulator"\nmarket = "coin"') + STRAT,
     "sources[0].market: must be one of 'spot', 'usdm', got 'coin'"),
    ("source key typo", SIM + "spead = 2.0\n" + STRAT, "sources[0].spead: unknown key (did you mean 'speed'?)"),
    ("fault rate", SIM + "faults = { drop_rate = 2 }\n" + STRAT,
     "sources[0].faults.drop_rate: must be a number in [0, 1], got 2"),
    ("bad symbol", SIM.replace('["BTCUSDT"]', '["btc"]') + STRAT,
     "sources[0].symbols[0]: must be a Binance symbol like \"BTCUSDT\", got 'btc'"),
    ("capture missing", "[[sources]]\ntype = \"simulator\"\ndata = \"nowhere.jsonl\"\n" + STRAT,
     "sources[0].data: no such capture file"),
    ("key env unset", "[[sources]]\ntype = \"binance\"\napi_key_env = \"EXTREMA_TEST_UNSET_KEY\"\n"
                      "api_secret_env = \"EXTREMA_TEST_UNSET_SECRET\"\n" + STRAT,
     "sources[0].api_key_env: environment variable EXTREMA_TEST_UNSET_KEY is not set"),
    ("secret without key", "[[sources]]\ntype = \"binance\"\napi_secret_env = \"X\"\n" + STRAT,
     "sources[0].api_key_env: is required with api_secret_env"),
    ("instrument source", SIM + "[[instruments]]\nsymbol = \"BTCUSDT\"\nsource = \"nope\"\n" + STRAT,
     "instruments[0].source: must be one of 'sim', got 'nope'"),
    ("instrument spec", SIM + "[[instruments]]\nname = \"BTC_USDT\"\nmarket = \"BINANCE_SPOT\"\n" + STRAT,
     "instruments[0].tick_size: is required"),
    ("instrument name", SIM + "[[instruments]]\nname = \"bitcoin\"\nmarket = \"BINANCE_SPOT\"\n"
                              "tick_size = \"0.01\"\nlot_size = \"0.001\"\n" + STRAT, "instruments[0].name:"),
    ("unknown symbol", SIM + "[[instruments]]\nsymbol = \"DOGEBTC\"\n" + STRAT,
     "instruments[0]: BINANCE_SPOT exchangeInfo has no symbol DOGEBTC"),
    ("no strategies", SIM, "strategies: the config has no [[strategies]]"),
    ("class path", SIM + "[[strategies]]\nclass = \"MarketMaker\"\n",
     "strategies[0].class: must be an import path \"package.module:ClassName\", got 'MarketMaker'"),
    ("class typo", SIM + STRAT.replace("MarketMaker", "MarketMakr"),
     "strategies[0].class: module 'extrema.examples' has no 'MarketMakr' (did you mean 'MarketMaker'?)"),
    ("module missing", SIM + STRAT.replace("extrema.examples", "no_such_module_x"),
     "strategies[0].class: cannot import module 'no_such_module_x'"),
    ("not a strategy", SIM + STRAT.replace("extrema.examples:MarketMaker", "collections:OrderedDict"),
     "strategies[0].class: collections:OrderedDict is not an extrema.Strategy subclass"),
    ("bad param", SIM + STRAT.replace("instrument = \"BTC_USDT\"", "instrument = \"BTC_USDT\", edg = 1"),
     "strategies[0].params: extrema.examples:MarketMaker(instrument, edge"),
    ("param refused", SIM + STRAT.replace("instrument = \"BTC_USDT\"", "instrument = \"BTC_USDT\", edge = -1"),
     "strategies[0].params: extrema.examples:MarketMaker refused them: edge >= 0"),
    ("subscribe kind", SIM + STRAT + "subscribe = { BTC_USDT = [\"candle\"] }\n",
     "strategies[0].subscribe.BTC_USDT[0]: must be one of 'trades', 'quotes', 'book', 'candles', 'mark_price', "
     "'orders', 'fills', got 'candle' (did you mean 'candles'?)"),
    ("subscribe instrument", SIM + STRAT + "subscribe = { ETH_USDT = [\"book\"] }\n",
     "strategies[0].subscribe.ETH_USDT: no instrument 'ETH_USDT' (did you mean 'BTC_USDT'?)"),
    ("same names", SIM + STRAT + STRAT, "strategies[1].name: two strategies are named 'market_maker'"),
    ("open orders", SIM + STRAT + "[risk]\nmax_open_orders = -1\n",
     "risk.max_open_orders: must be an integer >= 0, got -1"),
    ("limit typo", SIM + STRAT + "[risk]\nprice_band = 5\n", "risk.price_band: unknown key (did you mean 'price_band_bps'?)"),
    ("exposure zero", SIM + STRAT + "[risk]\nmax_exposure = 0\n", "risk.max_exposure: must be a number > 0, got 0"),
    ("reject burst", SIM + STRAT + "[risk]\nreject_burst = 5\n", "risk.reject_burst: must be [count, window_seconds], got 5"),
    ("position limit", SIM + STRAT + "[risk.instruments.BTC_USDT]\nmax_position = \"-1\"\n",
     "risk.instruments.BTC_USDT.max_position: must be a positive decimal number, got '-1'"),
    ("limit instrument", SIM + STRAT + "[risk.instruments.ETH_USDT]\nmax_position = \"1\"\n",
     "risk.instruments.ETH_USDT: no instrument 'ETH_USDT'"),
    ("rate limit", SIM + STRAT + "[[risk.rate_limits]]\nmarket = \"BINANCE_SPOT\"\norders = 0\nper_seconds = 1\n",
     "risk.rate_limits[0].orders: must be an integer >= 1, got 0"),
    ("strategy limit", SIM + STRAT + "risk = { max_open_orders = \"many\" }\n",
     "strategies[0].risk.max_open_orders: must be an integer >= 0, got a string 'many'"),
    ("ring capacity", SIM + STRAT + "[delivery]\nring_capacity = 1000\n", "delivery.ring_capacity: must be a power of two, got 1000"),
    ("delivery key", SIM + STRAT + "[delivery]\nzmq = \"tcp://*:5555\"\n", "delivery.zmq: unknown key"),
    ("parquet alone", SIM + STRAT + "[storage]\nparquet = \"x.parquet\"\n",
     "storage.parquet: is exported from the journal: set storage.journal too"),
    ("latency model", SIM + STRAT + "[backtest]\nlatency = { model = \"magic\" }\n",
     "backtest.latency.model: must be one of 'constant', 'data', got 'magic'"),
    ("latency key", SIM + STRAT + "[backtest]\nlatency = { feed = 5 }\n",
     "backtest.latency.feed: unknown key (did you mean 'feed_us'?)"),
    ("fees", SIM + STRAT + "[backtest]\nfees = { maker = 2 }\n", "backtest.fees.maker: must be a number in [-1, 1], got 2"),
    ("log level", SIM + STRAT + "[logging]\nlevel = \"LOUD\"\n", "logging.level: must be one of 'DEBUG'"),
    ("not toml", "[engine\n", "not valid TOML"),
]


@pytest.mark.parametrize("name, text, expect", BAD, ids=[b[0] for b in BAD])
def test_bad_config_exits_2_naming_the_key(name, text, expect, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["run", str(path), "--duration", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"extrema run: error: {path}: "), err
    assert expect in err, err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert f"no such config file: {tmp_path / 'nope.toml'}" in capsys.readouterr().err


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SIM + STRAT + "[risk]\nmax_open_order = 3\n")
    out = subprocess.run([sys.executable, "-m", "extrema.cli", "run", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("risk.max_open_order: unknown key (did you mean 'max_open_orders'?); "
                                       "allowed: breaker_cooldown, daily_loss, instruments, max_drawdown, "
                                       "max_exposure, max_open_orders, max_order_notional, price_band_bps, "
                                       "rate_limits, reject_burst"), out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SIM + STRAT + "[risk]\nmax_open_orders = -1\n")
    out = subprocess.run([sys.executable, "-m", "extrema.cli", "run", str(path), "--debug"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" in out.stderr and "ConfigError" in out.stderr


def test_valid_config_defaults():
    cfg = parse(SIM + STRAT + "[risk]\nreject_burst = [5, 10]\n[risk.instruments.BTC_USDT]\nmax_position = 0.5\n")
    assert cfg.engine == {"cpu": None, "busy_poll": False, "warm_up": True, "use_uvloop": True, "on_error": "continue",
                          "pnl_method": "average", "risk_interval": 1.0, "duration": 0.0}
    assert cfg.sources[0]["symbols"] == ["BTCUSDT"] and cfg.sources[0]["market"] == "spot"
    assert cfg.risk["limits"] == {"reject_burst": (5, 10.0)}
    assert cfg.risk["instruments"] == {"BTC_USDT": {"max_position": "0.5"}}
    assert cfg.strategies[0]["params"] == {"instrument": "BTC_USDT"}


def test_venue_is_one_source_and_not_both():
    cfg = parse("[venue]\ntype = \"simulator\"\nmarket = \"usdm\"\n")
    assert [s["market"] for s in cfg.sources] == ["usdm"]
    with pytest.raises(ConfigError, match="give \\[venue\\] .* or \\[\\[sources\\]\\] .*, not both"):
        parse("[venue]\ntype = \"simulator\"\n" + SIM)
