"""The `extrema` command: help a newcomer can follow, option checks, and real runs on the simulator."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extrema.cli import main

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("demo", "sim", "run", "backtest", "record", "bench")


def extrema_command():
    """The installed console script (next to this interpreter), else `python -m extrema.cli`."""
    script = Path(sys.executable).parent / "extrema"
    return [str(script)] if script.exists() else [sys.executable, "-m", "extrema.cli"]


def test_console_script_help():
    script = Path(sys.executable).parent / "extrema"
    assert script.exists() or shutil.which("extrema"), "pip install the package: the extrema console script"
    out = subprocess.run(extrema_command() + ["--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for cmd in COMMANDS:
        assert f"\n    {cmd}" in out.stdout, out.stdout
    assert "extrema demo" in out.stdout and "examples:" in out.stdout and "Exit codes" in out.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_has_help_with_examples(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: extrema {cmd}") and "examples:" in text and f"extrema {cmd}" in text.split("examples:")[1]


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "Start here" in capsys.readouterr().out


@pytest.mark.parametrize("argv, expect", [
    (["demo", "--duration", "0"], "extrema demo: error: --duration must be > 0 seconds, got 0.0"),
    (["demo", "--market", "coin"], "argument --market: invalid choice: 'coin'"),
    (["sim", "--drop-rate", "2"], "extrema sim: error: --drop-rate: must be a number in [0, 1], got 2.0"),
    (["sim", "--loop"], "extrema sim: error: --capture-http and --loop need --capture WS_JSONL"),
    (["sim", "--symbols", "btc"], "extrema sim: error: --symbols: no default listing for 'BTC'"),
    (["sim", "--symbols", "BTC-USDT"], "extrema sim: error: --symbols: must be a Binance symbol"),
    (["sim", "--speed", "0"], "extrema sim: error: --speed: must be a number > 0, got 0.0"),
    (["run"], "the following arguments are required: CONFIG.toml"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    (["backtest"], "extrema backtest: error: no data to replay: --data PATH"),
    (["backtest", "--data", "x", "--param", "a=1"], "--param sets a parameter of a --strategy"),
    (["backtest", "--data", "x", "--speed", "5"], "--speed paces a --realtime replay: add --realtime"),
    (["backtest", "--data", "x", "--fees", "cheap"], "--fees 'cheap': write 2 comma-separated numbers"),
    (["backtest", "--data", "x", "--latency-us", "1,2"], "--latency-us '1,2': write 3 comma-separated numbers"),
    (["backtest", "--data", "x", "--instrument", "BTC_USDT"], "--instrument 'BTC_USDT': write NAME:MARKET:TICK:LOT"),
    (["backtest", "--data", "/no/such/file.jsonl", "--strategy", "m:C"],
     "backtest.data[0]: no such file or directory: /no/such/file.jsonl"),
    (["backtest", "--data", "README.md"], "no strategies: --strategy MODULE:CLASS"),
    (["backtest", "--data", "README.md", "--strategy", "extrema.examples:EmaCross"], "no instruments: --instrument"),
    (["backtest", "--data", "README.md", "--strategy", "extrema.examples:EmaCross",
      "--instrument", "BTC_USDT:BINANCE_SPOT:0.01:0.001"], "where to write the report: --out DIR"),
    (["backtest", "--data", "README.md", "--strategy", "extrema.examples:EmaCross",
      "--instrument", "BTC_USDT:NYSE:0.01:0.001"], "instruments[0].market: must be one of 'BINANCE_SPOT'"),
    (["backtest", "--data", "README.md", "--strategy", "EmaCross", "--instrument", "BTC_USDT:BINANCE_SPOT:0.01:0.001"],
     "strategies[0].class: must be an import path"),
    (["record"], "what to record: a CONFIG.toml (its [[sources]]) or --sim spot|usdm"),
    (["record", "--sim", "spot"], "where to record: --out DIR"),
    (["record", "--sim", "spot", "--out", "j", "--streams", "book,orders"], "--streams: 'orders' is not one of"),
    (["record", "examples/config.toml", "--sim", "spot", "--out", "j"], "give a CONFIG.toml or --sim, not both"),
    (["bench", "boook"], "no suite 'boook' (did you mean 'book'?)"),
])
def test_usage_errors_exit_2_on_one_line(argv, expect, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    try:
        code = main(argv)
    except SystemExit as exc:                     # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert expect in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_backtest_config_sections_are_validated(tmp_path, capsys, monkeypatch):
    """The [backtest] section and the command line merge; instruments loaded from a venue are refused."""
    from extrema.cli.commands import backtest_config
    from extrema.cli.main import build_parser
    data = tmp_path / "events.jsonl"
    data.write_text("")
    cfg_path = tmp_path / "bt.toml"
    cfg_path.write_text(f"""
[[instruments]]
name = "BTC_USDT"
market = "binance_spot"
tick_size = "0.01"
lot_size = "0.00001"
min_notional = "5"
[[strategies]]
class = "extrema.examples:MarketMaker"
params = {{ instrument = "BTC_USDT" }}
[backtest]
data = ["{data.name}"]
out = "report"
latency = {{ model = "constant", feed_us = 100 }}
fees = {{ maker = 0.0001, taker = 0.0005 }}
""")
    args = build_parser().parse_args(["backtest", str(cfg_path), "--latency-us", "1,2,3", "--realtime", "--speed", "4"])
    cfg = backtest_config(args)
    b = cfg.backtest
    assert b["latency"] == {"model": "constant", "params": {"feed_us": 1, "entry_us": 2, "response_us": 3}}
    assert b["fees"] == {"maker": 0.0001, "taker": 0.0005} and b["realtime"] and b["speed"] == 4.0
    assert cfg.resolve(b["data"][0]) == data and cfg.resolve(b["out"]) == tmp_path / "report"
    assert cfg.instruments[0]["market"] == "BINANCE_SPOT"
    cfg_path.write_text(f'[[instruments]]\nsymbol = "BTCUSDT"\n[backtest]\ndata = ["{data.name}"]\n')
    assert main(["backtest", str(cfg_path)]) == 2
    assert ("instruments[0].symbol: loads the instrument from a source's exchangeInfo, but the config has no "
            "[[sources]]; give name / market / tick_size / lot_size") in capsys.readouterr().err


def test_record_config_is_validated_before_recording(tmp_path, capsys):
    cfg = tmp_path / "rec.toml"
    cfg.write_text("[[sources]]\ntype = \"simulator\"\n[storage]\njournal = \"j\"\nraw_json = \"x\"\n")
    assert main(["record", str(cfg)]) == 2
    assert "storage.raw_json: unknown key (did you mean 'raw_jsonl'?)" in capsys.readouterr().err


def test_bench_lists_the_suites_of_the_checkout(capsys):
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    assert str(ROOT / "benches") in out and "book" in out


def test_sim_prints_urls_and_serves(capsys):
    """`extrema sim` starts a real simulator: the printed REST URL answers Binance's ping."""
    import threading
    import urllib.request
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("code", main(["sim", "--market", "usdm", "--duration", "2",
                                                                         "--symbols", "BTCUSDT,ETHUSDT"])))
    t.start()
    import time
    deadline = time.monotonic() + 30
    rest = None
    while rest is None and time.monotonic() < deadline:
        out = capsys.readouterr().out
        result.setdefault("out", "")
        result["out"] += out
        for line in result["out"].splitlines():
            if line.strip().startswith("REST"):
                rest = line.split()[-1]
        time.sleep(0.05)
    assert rest is not None, result.get("out")
    with urllib.request.urlopen(rest + "/fapi/v1/ping", timeout=5) as r:
        assert r.status == 200 and json.loads(r.read()) == {}
    t.join(30)
    text = result["out"] + capsys.readouterr().out
    assert result["code"] == 0
    assert "BTCUSDT, ETHUSDT" in text and "/ws-fapi/v1" in text and "API key" in text and "API secret" in text


def test_run_example_config_on_the_simulator():
    out = subprocess.run(extrema_command() + ["run", str(ROOT / "examples" / "config.toml"), "--duration", "3"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 strategies on BTC_USDT (BINANCE_SPOT)" in out.stdout, out.stdout
    assert "orders sent over the WebSocket API" in out.stdout, out.stdout
    assert "hook errors 0" in out.stdout and "book errors 0" in out.stdout, out.stdout
    # not a terminal: periodic plain lines with each strategy, never ANSI redraws
    assert "\x1b[" not in out.stdout and "mm: orders " in out.stdout and "ema: orders " in out.stdout


def test_demo_writes_the_report(tmp_path):
    report = tmp_path / "report"
    out = subprocess.run(extrema_command() + ["demo", "--duration", "5", "--out", str(report)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "market_maker" in out.stdout and "ema_cross" in out.stdout and "monitor" in out.stdout
    assert "orders sent over the WebSocket API" in out.stdout
    for name in ("orders.csv", "fills.csv", "equity.csv", "stats.json", "report.html"):
        assert (report / name).is_file(), name
    stats = json.loads((report / "stats.json").read_text())
    assert stats["summary"]["trades"] == len((report / "fills.csv").read_text().splitlines()) - 1
    assert f"report: {report}" in out.stdout


def test_record_then_backtest_the_journal_and_the_raw_frames(tmp_path):
    """`extrema record` on the simulator writes a journal, the raw frames and a Parquet file; `extrema
    backtest` replays the journal and the raw frames (through the compiled decoder and book sync) with
    the same strategy, and both runs see the same market."""
    rec = tmp_path / "rec"
    out = subprocess.run(extrema_command() + ["record", "--sim", "spot", "--symbols", "BTCUSDT", "--out",
                                              str(rec / "journal"), "--raw-jsonl", str(rec / "raw.jsonl"),
                                              "--parquet", str(rec / "book.parquet"), "--duration", "3"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    assert (rec / "book.parquet").is_file() and list((rec / "journal").glob("seg-*.exj"))
    assert "raw frames into" in out.stdout
    summaries = {}
    # the journal brings its instrument table (instruments.json); raw frames need the instrument named
    for data, instrument in (("journal", []), ("raw.jsonl", ["--instrument", "BTC_USDT:BINANCE_SPOT:0.01:0.00001:5"])):
        report = tmp_path / f"bt-{data}"
        out = subprocess.run(extrema_command() + [
            "backtest", *instrument, "--strategy",
            "extrema.examples:MarketMaker", "--param", 'instrument="BTC_USDT"', "--data", str(rec / data),
            "--out", str(report), "--no-progress"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert out.returncode == 0, out.stderr + out.stdout
        assert "dropped" not in out.stdout, out.stdout
        stats = json.loads((report / "stats.json").read_text())
        summaries[data] = stats["summary"]
        assert stats["summary"]["events"] > 0
        assert (report / "report.html").is_file()
    # the raw frames replay into the records the journal holds, apart from what the live engine added
    # beside the market (its own book resets at connect) - the strategy trades the same in both
    assert summaries["journal"]["orders"] == summaries["raw.jsonl"]["orders"]
    assert summaries["journal"]["trades"] == summaries["raw.jsonl"]["trades"]
