"""Write a backtest's results to a directory: CSV tables, stats.json, a chart and one HTML report.

Files (all UTF-8):

* ``orders.csv`` / ``fills.csv`` — one row per order / fill, with strategy and instrument names next to
  their ids and enum values by name (side BUY/SELL, order type, status, reason, liquidity MAKER/TAKER).
* ``equity.csv`` — the equity curve plus its drawdown (absolute and fraction of the running peak).
* ``stats.json`` — `BacktestResult.stats()` (see `extrema.backtest.stats` for every definition).
* ``equity.png`` — equity, drawdown and net position per instrument, drawn with matplotlib's Agg
  canvas (no display, no global pyplot state). matplotlib is optional (``pip install 'extrema[report]'``);
  without it the PNG is skipped and the HTML draws an inline SVG chart and says why.
* ``report.html`` — self-contained: styles inline, the chart embedded (base64 PNG or inline SVG), no
  script, no CDN, nothing fetched from the network.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from extrema.backtest.stats import SUMMARY_KEYS, drawdown_series, format_ts

CHART_FILE = "equity.png"
# Beyond this many points a chart line is reduced to a per-bin min/max envelope: a million-sample
# equity curve draws as fast as a short one and its drawdowns stay visible.
MAX_CHART_POINTS = 4000


SIDES = {1: "BUY", -1: "SELL"}
LIQUIDITY = {0: "UNKNOWN", 1: "MAKER", 2: "TAKER"}


def _enum_names(enum_type):
    return {int(m): m.name for m in enum_type}


def _iso_times(ts: np.ndarray) -> list:
    """ISO-8601 UTC text for a column of µs timestamps, vectorised (a million rows in well under a second)."""
    return [t + "Z" for t in np.datetime_as_string(ts.astype("datetime64[us]"), unit="us").tolist()]


def _names(ids: np.ndarray, table) -> list:
    lookup = table if isinstance(table, dict) else dict(enumerate(table))
    return [lookup.get(i, i) for i in ids.tolist()]


def _write_columns(path: Path, header: list, columns: list):
    # csv writes a float with repr(): the shortest text that parses back to the same double.
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(zip(*columns))


def write_orders_csv(result, path: Path):
    from extrema import OrderReason, OrderStatus, OrderType, TimeInForce
    o = result.orders
    _write_columns(path, [
        "client_order_id", "strategy_id", "strategy", "instrument_id", "instrument", "side", "order_type",
        "time_in_force", "price", "quantity", "filled", "status", "reason", "submit_ts", "ack_ts", "done_ts"], [
        o["client_order_id"].tolist(), o["strategy"].tolist(), _names(o["strategy"], result.strategies),
        o["instrument_id"].tolist(), _names(o["instrument_id"], result.instruments),
        _names(o["side"], SIDES), _names(o["order_type"], _enum_names(OrderType)),
        _names(o["time_in_force"], _enum_names(TimeInForce)), o["price"].tolist(), o["quantity"].tolist(),
        o["filled"].tolist(), _names(o["status"], _enum_names(OrderStatus)),
        _names(o["reason"], _enum_names(OrderReason)), o["submit_ts"].tolist(), o["ack_ts"].tolist(),
        o["done_ts"].tolist()])


def write_fills_csv(result, path: Path):
    f = result.fills[np.argsort(result.fills["ts"], kind="stable")]
    _write_columns(path, [
        "ts", "time", "client_order_id", "strategy_id", "strategy", "instrument_id", "instrument", "side",
        "price", "quantity", "fee", "liquidity", "latency_us"], [
        f["ts"].tolist(), _iso_times(f["ts"]), f["client_order_id"].tolist(), f["strategy"].tolist(),
        _names(f["strategy"], result.strategies), f["instrument_id"].tolist(),
        _names(f["instrument_id"], result.instruments), _names(f["side"], SIDES), f["price"].tolist(),
        f["quantity"].tolist(), f["fee"].tolist(), _names(f["liquidity"], LIQUIDITY), f["latency_us"].tolist()])


def write_equity_csv(result, path: Path):
    e = result.equity
    absolute, pct = drawdown_series(e)
    _write_columns(path, [
        "ts", "time", "equity", "realized", "unrealized", "fees", "gross_exposure", "drawdown", "drawdown_pct"], [
        e["ts"].tolist(), _iso_times(e["ts"]), e["equity"].tolist(), e["realized"].tolist(),
        e["unrealized"].tolist(), e["fees"].tolist(), e["gross_exposure"].tolist(), absolute.tolist(),
        [("" if x != x else x) for x in pct.tolist()]])    # empty where the peak is not positive


# ------------------------------------------------------------------------------------------ charts
def _envelope(x: np.ndarray, y: np.ndarray, limit: int = MAX_CHART_POINTS):
    """At most ~limit points: per bin the first, min, max and last sample, in time order."""
    n = len(x)
    if n <= limit:
        return x, y
    bins = limit // 4
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    keep = set()
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if hi <= lo:
            continue
        seg = y[lo:hi]
        keep.update((lo, hi - 1, lo + int(np.argmin(seg)), lo + int(np.argmax(seg))))
    idx = np.array(sorted(keep))
    return x[idx], y[idx]


def position_paths(result) -> dict:
    """instrument name -> (ts, net position after each fill), summed over strategies."""
    f = result.fills[np.argsort(result.fills["ts"], kind="stable")]
    out = {}
    for iid, name in result.instruments.items():
        sel = f["instrument_id"] == iid
        if sel.any():
            out[name] = (f["ts"][sel], np.cumsum(f["side"][sel] * f["quantity"][sel]))
    return out


def _chart_series(result):
    e = result.equity
    ts = e["ts"]
    absolute, _ = drawdown_series(e)
    end_ts = int(ts[-1]) if len(ts) else None
    positions = {}
    for name, (pts, pos) in position_paths(result).items():
        if end_ts is not None and pts[-1] < end_ts:    # hold the last position to the end of the run
            pts, pos = np.r_[pts, end_ts], np.r_[pos, pos[-1]]
        positions[name] = (pts, pos)
    return ts, e["equity"], absolute, positions


def render_png(result) -> bytes | None:
    """The three-panel chart as PNG bytes, or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        import matplotlib.dates as mdates
    except ImportError:
        return None
    ts, equity, drawdown, positions = _chart_series(result)
    # The object API with an Agg canvas: no pyplot, no backend switch, safe in worker processes.
    fig = Figure(figsize=(11, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_eq, ax_dd, ax_pos = fig.subplots(3, 1, sharex=True, height_ratios=[3, 1.5, 1.5])

    def dates(us):
        return np.asarray(us, dtype="datetime64[us]")
    if len(ts):
        x, y = _envelope(ts, equity)
        ax_eq.plot(dates(x), y, color="#1f77b4", linewidth=1.0)
        x, y = _envelope(ts, drawdown)
        ax_dd.fill_between(dates(x), y, 0.0, color="#d62728", alpha=0.4, step="post", linewidth=0)
        ax_dd.plot(dates(x), y, color="#d62728", linewidth=0.8, drawstyle="steps-post")
    for name, (pts, pos) in positions.items():
        x, y = _envelope(pts, pos)
        ax_pos.plot(dates(x), y, drawstyle="steps-post", linewidth=1.0, label=name)
    if positions:
        ax_pos.legend(loc="upper left", fontsize="small", ncols=min(4, len(positions)))
    ax_pos.axhline(0.0, color="#888888", linewidth=0.6)
    ax_eq.set_ylabel("equity")
    ax_dd.set_ylabel("drawdown")
    ax_pos.set_ylabel("net position")
    ax_eq.set_title("Equity, drawdown and positions (UTC)")
    for ax in (ax_eq, ax_dd, ax_pos):
        ax.grid(True, linewidth=0.3)
    ax_pos.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax_pos.xaxis.get_major_locator()))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_svg(result, width: int = 900, height: int = 360) -> str:
    """An inline SVG of equity (top) and drawdown (bottom): the chart when matplotlib is missing."""
    ts, equity, drawdown, _ = _chart_series(result)
    pad, gap = 50, 20
    top_h = int((height - 2 * pad - gap) * 0.65)
    bottom_h = height - 2 * pad - gap - top_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="equity and drawdown">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    if len(ts) >= 2 and ts[-1] > ts[0]:
        t0, t1 = float(ts[0]), float(ts[-1])

        def panel(values, y0, h, color, label):
            x, y = _envelope(ts, values)
            lo, hi = float(np.min(y)), float(np.max(y))
            if hi == lo:
                lo, hi = lo - 1.0, hi + 1.0
            px = pad + (x - t0) / (t1 - t0) * (width - 2 * pad)
            py = y0 + (hi - y) / (hi - lo) * h
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist()))
            parts.append(f'<rect x="{pad}" y="{y0}" width="{width - 2 * pad}" height="{h}" fill="none" '
                         f'stroke="#cccccc"/>')
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{points}"/>')
            parts.append(f'<text x="{pad}" y="{y0 - 4}" font-size="11" fill="#333">{html.escape(label)} '
                         f'(min {lo:.6g}, max {hi:.6g})</text>')
        panel(equity, pad, top_h, "#1f77b4", "equity")
        panel(drawdown, pad + top_h + gap, bottom_h, "#d62728", "drawdown")
        parts.append(f'<text x="{pad}" y="{height - 12}" font-size="11" fill="#333">'
                     f'{html.escape(format_ts(int(ts[0])))}</text>')
        parts.append(f'<text x="{width - pad}" y="{height - 12}" font-size="11" fill="#333" '
                     f'text-anchor="end">{html.escape(format_ts(int(ts[-1])))}</text>')
    else:
        parts.append(f'<text x="{pad}" y="{height // 2}" font-size="13" fill="#333">'
                     f'fewer than two equity samples: nothing to draw</text>')
    parts.append("</svg>")
    return "".join(parts)


# -------------------------------------------------------------------------------------------- HTML
def _fmt(key: str, value) -> str:
    if value is None:
        return "–"
    if key.endswith("_ts") and isinstance(value, int):
        return format_ts(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if key in ("win_rate", "fill_ratio_qty", "fill_ratio_orders", "maker_share", "max_drawdown_pct",
                   "maker_share_notional", "time_in_market", "underwater_fraction"):
            return f"{value * 100:.2f}%"
        if abs(value) >= 1e15:
            return f"{value:.6g}"
        return f"{value:,.0f}" if abs(value) >= 1e6 else f"{value:,.6g}"
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value, sort_keys=True))
    return html.escape(str(value))


def _kv_table(rows: dict, css: str = "kv") -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(str(k), v)}</td></tr>" for k, v in rows.items())
    return f'<table class="{css}">{body}</table>'


def _grid_table(groups: dict, first: str, columns: list) -> str:
    if not groups:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [first, *columns])
    body = "".join(
        "<tr><td>" + html.escape(str(name)) + "</td>"
        + "".join(f"<td>{_fmt(c, g.get(c))}</td>" for c in columns) + "</tr>"
        for name, g in groups.items())
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
table.kv th{text-align:left;font-weight:600;color:#444}
table.grid th{background:#f4f4f4}table.grid td:first-child{text-align:left}
.note{background:#fff7e0;border:1px solid #f0d58c;padding:8px 12px;font-size:13px}
.cols{display:flex;flex-wrap:wrap;gap:32px}
img{max-width:100%}
"""


def render_html(result, stats: dict, *, png: bytes | None, files: list) -> str:
    summary = stats["summary"]
    pnl = stats["pnl"]
    if png is not None:
        chart = (f'<img alt="equity, drawdown and positions" '
                 f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
    else:
        chart = ('<p class="note">matplotlib is not installed, so equity.png was not written and this chart '
                 'is a plain SVG (equity and drawdown only). Install the report extra for the full '
                 'chart: <code>pip install \'extrema[report]\'</code>.</p>' + render_svg(result))
    strategy_cols = ["pnl", "realized", "unrealized", "fees", "fills", "quantity", "notional", "round_trips",
                     "win_rate", "maker_share", "orders", "fill_ratio_qty"]
    instrument_cols = ["pnl", "realized", "unrealized", "fees", "fills", "quantity", "notional", "position",
                       "max_abs_position", "mark", "mark_source", "round_trips", "win_rate", "maker_share"]
    latency_cols = ["fills", "quantity", "notional", "pnl", "pnl_bps", "maker_share"]
    buckets = {b["bucket"]: b for b in stats["latency"]["pnl_by_latency"]}
    orders = stats["orders"]
    order_rows = {k: v for k, v in orders.items() if not isinstance(v, dict)}
    links = " · ".join(f'<a href="{html.escape(name)}">{html.escape(name)}</a>' for name in files)
    title = f"Backtest report — {', '.join(result.strategies) or 'no strategies'}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{_fmt('start_ts', summary['start_ts'])} → {_fmt('end_ts', summary['end_ts'])} · files: {links}</p>",
        "<h2>Summary</h2>",
        '<div class="cols">',
        _kv_table({k: summary[k] for k in SUMMARY_KEYS[:len(SUMMARY_KEYS) // 2 + 1]}),
        _kv_table({k: summary[k] for k in SUMMARY_KEYS[len(SUMMARY_KEYS) // 2 + 1:]}),
        "</div>",
        "<h2>Chart</h2>", chart,
        "<h2>By strategy</h2>", _grid_table(pnl["by_strategy"], "strategy", strategy_cols),
        "<h2>By instrument</h2>", _grid_table(pnl["by_instrument"], "instrument", instrument_cols),
        "<h2>P&amp;L by submit → fill latency</h2>",
        f"<p>{html.escape(stats['latency']['pnl_definition'])}.</p>",
        _grid_table(buckets, "latency", latency_cols),
        '<div class="cols">',
        "<div><h2>Fill latency (µs)</h2>" + _kv_table(stats["latency"]["fill_latency_us"]) + "</div>",
        "<div><h2>Order ack latency (µs)</h2>" + _kv_table(orders["ack_latency_us"]) + "</div>",
        "</div>",
        '<div class="cols">',
        "<div><h2>Orders</h2>" + _kv_table(order_rows) + "</div>",
        "<div><h2>Orders by status</h2>" + _kv_table(orders["by_status"]) + "</div>",
        "<div><h2>Rejections by reason</h2>" + (_kv_table(orders["rejected_by_reason"])
                                               if orders["rejected_by_reason"] else "<p>none</p>") + "</div>",
        "</div>",
        '<div class="cols">',
        "<div><h2>Returns</h2>" + _kv_table(stats["returns"]) + "</div>",
        "<div><h2>Drawdown</h2>" + _kv_table(stats["drawdown"]) + "</div>",
        "<div><h2>Round trips (FIFO)</h2>" + _kv_table(stats["round_trips"]) + "</div>",
        "<div><h2>Liquidity</h2>" + _kv_table(stats["liquidity"]) + "</div>",
        "<div><h2>Exposure</h2>" + _kv_table(stats["exposure"]) + "</div>",
        "</div>",
        "<h2>Run</h2>", _kv_table(stats["meta"]) if stats["meta"] else "<p>no run facts recorded</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def write_report(result, directory) -> Path:
    """Write every file of the report into `directory` (created if needed) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_orders_csv(result, directory / "orders.csv")
    write_fills_csv(result, directory / "fills.csv")
    write_equity_csv(result, directory / "equity.csv")
    stats = result.stats()
    (directory / "stats.json").write_text(json.dumps(stats, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    files = ["orders.csv", "fills.csv", "equity.csv", "stats.json"]
    png = render_png(result)
    chart_path = directory / CHART_FILE
    if png is not None:
        chart_path.write_bytes(png)
        files.append(CHART_FILE)
    elif chart_path.exists():
        chart_path.unlink()     # never leave a stale chart from an earlier run next to this report
    (directory / "report.html").write_text(render_html(result, stats, png=png, files=files), encoding="utf-8")
    return directory
