"""BacktestResult.write(): every file is written, parses back, and carries the result's content; the
HTML is self-contained; without matplotlib everything but the PNG is written and the HTML says so."""
import csv
import html.parser
import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from extrema.backtest import report

from backtest_samples import hand_result, random_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Html(html.parser.HTMLParser):
    """Collects tags, attributes and text; counts open / close of the block tags the report uses."""
    VOID = {"meta", "img", "br", "rect", "polyline"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.attrs, self.tags = [], [], [], []
        self.mismatch = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.mismatch.append((tag, list(self.stack[-3:])))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_html(text):
    p = _Html()
    p.feed(text)
    p.close()
    assert not p.mismatch, p.mismatch
    assert not p.stack, p.stack
    return p, " ".join(p.text)


def assert_self_contained(parser):
    for tag, key, value in parser.attrs:
        if key in ("src", "href"):
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
    assert "script" not in parser.tags and "link" not in parser.tags


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_write_creates_every_file_and_they_parse_back(tmp_path):
    result = hand_result()
    out = result.write(tmp_path / "run")
    assert out == tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.csv", "equity.png", "fills.csv", "orders.csv", "report.html", "stats.json"]

    fills = read_csv(out / "fills.csv")
    assert len(fills) == len(result.fills)
    assert [f["strategy"] for f in fills] == ["mm", "mm", "momo", "mm", "momo"]
    assert [f["instrument"] for f in fills] == ["BTC_USDT", "BTC_USDT", "ETH_USDT", "BTC_USDT", "ETH_USDT"]
    assert [f["side"] for f in fills] == ["BUY", "SELL", "SELL", "SELL", "BUY"]
    assert [f["liquidity"] for f in fills] == ["TAKER", "MAKER", "TAKER", "MAKER", "TAKER"]
    assert [float(f["price"]) for f in fills] == result.fills["price"].tolist()     # exact float round trip
    assert [int(f["ts"]) for f in fills] == result.fills["ts"].tolist()
    assert fills[0]["time"] == "2026-01-01T00:00:01.000000Z"
    assert [float(f["fee"]) for f in fills] == result.fills["fee"].tolist()

    orders = read_csv(out / "orders.csv")
    assert len(orders) == 5
    assert orders[4]["status"] == "REJECTED" and orders[4]["reason"] == "POST_ONLY_WOULD_TAKE"
    assert orders[3]["order_type"] == "LIMIT" and orders[3]["time_in_force"] == "GTX"
    assert orders[2]["strategy"] == "momo" and orders[2]["instrument"] == "ETH_USDT"
    assert [float(o["filled"]) for o in orders] == result.orders["filled"].tolist()

    equity = read_csv(out / "equity.csv")
    assert [float(e["equity"]) for e in equity] == result.equity["equity"].tolist()
    assert all(float(e["drawdown"]) <= 0 for e in equity)
    assert float(equity[3]["drawdown"]) == pytest.approx(1009.0 - 1009.8)

    stats = json.loads((out / "stats.json").read_text())
    assert stats == json.loads(json.dumps(result.stats()))
    assert stats["summary"]["pnl"] == pytest.approx(17.5)

    png = (out / "equity.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 20_000

    text = (out / "report.html").read_text()
    parser, visible = parse_html(text)
    assert_self_contained(parser)
    assert text.startswith("<!DOCTYPE html>")
    assert 'src="data:image/png;base64,' in text and "<svg" not in text
    for needle in ("sharpe", "max_drawdown", "turnover", "fill_ratio_qty", "win_rate", "By strategy",
                   "mm", "momo", "BTC_USDT", "ETH_USDT", "17.5", "19.5", "66.67%", "POST_ONLY_WOULD_TAKE",
                   ">=1s", "2026-01-01T00:00:00.000000Z", "equity.csv"):
        assert needle in visible, needle
    assert "matplotlib is not installed" not in visible


def test_embedded_png_is_the_written_chart(tmp_path):
    import base64
    import re
    out = random_result(1, n_equity=20_000, n_fills=1_000).write(tmp_path)
    text = (out / "report.html").read_text()
    embedded = base64.b64decode(re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', text).group(1))
    assert embedded == (out / "equity.png").read_bytes()
    assert len(read_csv(out / "fills.csv")) == 1_000
    assert len(read_csv(out / "equity.csv")) == 20_000
    _, visible = parse_html(text)
    for name in ("mm", "momo", "ml", "BTC_USDT_PERP", "ETH_USDT_PERP", "ConservativeQueue()"):
        assert name in visible


def test_envelope_keeps_extremes_in_order():
    x = np.arange(100_000)
    y = np.sin(x / 1000.0) * (x % 997 == 0) * 5 + np.cos(x / 77.0)
    ex, ey = report._envelope(x, y, limit=400)
    assert len(ex) <= 400 and (np.diff(ex) > 0).all()
    assert ey.min() == y.min() and ey.max() == y.max()
    assert ex[0] == 0 and ex[-1] == len(x) - 1
    small_x, small_y = report._envelope(x[:10], y[:10])
    assert (small_x == x[:10]).all()


NO_MATPLOTLIB = textwrap.dedent("""
    import importlib.abc, pickle, sys

    class NoMatplotlib(importlib.abc.MetaPathFinder):
        # What an environment without the optional dependency looks like to the import system.
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoMatplotlib())
    with open(sys.argv[1], "rb") as fh:
        result = pickle.load(fh)
    result.write(sys.argv[2])
    assert "matplotlib" not in sys.modules
""")


def test_without_matplotlib_everything_but_the_png_is_written(tmp_path):
    result = hand_result()
    out = tmp_path / "report"
    out.mkdir()
    (out / "equity.png").write_bytes(b"stale chart from an earlier run")
    pickled = tmp_path / "result.pickle"
    pickled.write_bytes(pickle.dumps(result))
    proc = subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, str(pickled), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.csv", "fills.csv", "orders.csv", "report.html", "stats.json"]
    text = (out / "report.html").read_text()
    parser, visible = parse_html(text)
    assert_self_contained(parser)
    assert "matplotlib is not installed" in visible and "extrema[report]" in visible
    assert "svg" in parser.tags and "polyline" in parser.tags and "data:image/png" not in text
    assert 'href="equity.png"' not in text
    assert json.loads((out / "stats.json").read_text())["summary"]["trades"] == 5


def test_svg_chart_for_degenerate_curves():
    result = hand_result()
    svg = report.render_svg(result)
    assert svg.count("<polyline") == 2 and svg.startswith("<svg")
    one = hand_result()
    one.equity = one.equity[:1]
    assert "nothing to draw" in report.render_svg(one)
