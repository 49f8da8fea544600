"""A downstream Cython module compiles against the shipped .pxd files (`cimport extrema`) and drives
the compiled book through its C API, with no Python call in between."""
import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import extrema

DOWNSTREAM = r'''
# cython: language_level=3
cimport extrema
from extrema cimport OrderBook, Record, KIND_BOOK_DELTA, FLAG_ASK, FLAG_LAST, BookStatus, now_us
from extrema cimport RingConsumer
from libc.stdint cimport int64_t

def sum_sequences_nogil(RingConsumer consumer, int64_t expected):
    """A Cython consumer that waits and reads without the GIL."""
    cdef const Record *batch
    cdef Py_ssize_t n, i
    cdef int64_t total = 0, count = 0
    with nogil:
        while count < expected:
            n = consumer.wait_ptr(1024, &batch, 5000000000)
            if n <= 0:
                break
            for i in range(n):
                total += batch[i].sequence
            count += n
    return count, total

def drive(OrderBook book, int n):
    """Write n bid levels and one ask through the compiled API; return (best bid, best ask, size, t)."""
    cdef int i
    cdef Record rec
    cdef BookStatus st
    with nogil:
        for i in range(n):
            st = book.set_level(0, 1000 + i, 5 + i)
        rec.kind = KIND_BOOK_DELTA
        rec.flags = FLAG_ASK | FLAG_LAST
        rec.instrument_id = book.instrument_id
        rec.sequence = 42
        rec.price = 2000
        rec.quantity = 3
        st = book.apply_record(&rec)
    return (book.best_price_raw(0), book.best_price_raw(1), book.qty_at_raw(0, 1000), <int>st, now_us())
'''


def compile_against_extrema(source: str, name: str, work: Path):
    """Cythonize and compile a module the way a downstream project would: only the installed package."""
    pkg_dir = Path(extrema.__file__).parent
    pyx = work / f"{name}.pyx"
    pyx.write_text(source)
    c_file = work / f"{name}.c"
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", str(pkg_dir.parent), str(pyx), "-o", str(c_file)],
                   check=True, capture_output=True, text=True)
    so = work / (name + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = sysconfig.get_config_var("CC").split()
    subprocess.run(cc + ["-shared", "-fPIC", "-O2", f"-I{sysconfig.get_paths()['include']}",
                         f"-I{pkg_dir / '_core'}", str(c_file), "-o", str(so)],
                   check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    return compile_against_extrema(DOWNSTREAM, "downstream_strategy", tmp_path_factory.mktemp("downstream"))


@pytest.fixture(scope="module")
def cython_example(tmp_path_factory):
    source = (Path(__file__).resolve().parents[2] / "examples" / "cython_strategy.pyx").read_text()
    return compile_against_extrema(source, "cython_strategy", tmp_path_factory.mktemp("example"))


def test_pxd_files_ship_with_the_package():
    core = Path(extrema.__file__).parent / "_core"
    for name in ("types.pxd", "book.pxd", "clock.pxd", "fixedpoint.pxd", "ex_bits.h", "ex_clock.h", "ex_fixed.h"):
        assert (core / name).is_file(), name
    assert (Path(extrema.__file__).parent / "__init__.pxd").is_file()


def test_downstream_module_uses_the_c_api(downstream):
    book = extrema.OrderBook(2, 0, instrument_id=3)
    bid, ask, size, status, t = downstream.drive(book, 10)
    assert (bid, ask, size, status) == (1009, 2000, 5, 0)
    assert book.best_bid_raw == 1009 and book.best_ask_raw == 2000 and book.last_update_id == 42
    assert abs(t - extrema.time_us()) < 10_000_000


def test_cython_strategy_is_dispatched_through_the_vtable(cython_example):
    reg = extrema.InstrumentRegistry()
    btc = reg.register("BTC_USDT", extrema.Market.SIM, "0.01", "0.001")
    strategy = cython_example.VwapTracker()
    assert strategy._bind_hooks() == {"on_trade": "cython", "on_book": "cython"}
    trades = extrema.empty_records(4)
    trades["kind"] = extrema.RecordKind.TRADE
    trades["instrument_id"] = btc.id
    trades["price"] = [100, 200, 300, 400]
    trades["quantity"] = [1, 1, 2, 0]
    book = extrema.empty_records(2)
    book["kind"] = extrema.RecordKind.BOOK_DELTA
    book["instrument_id"] = btc.id
    book["price"] = [99, 105]
    book["quantity"] = 3
    book["flags"] = [0, extrema.RecordFlag.ASK | extrema.RecordFlag.LAST]
    engine = (extrema.EngineBuilder(reg).channel(extrema.RecordSource(__import__("numpy").concatenate([trades, book])))
              .strategy(strategy, subscribe={"BTC_USDT": ["trades", "book"]}).build())
    engine.run(timeout=30)
    assert strategy.trades == 4 and strategy.books == 1 and strategy.best_bid_raw == 99
    assert strategy.vwap_raw == (100 + 200 + 600) / 4


def test_python_subclass_of_a_cython_strategy(cython_example):
    class Mixed(cython_example.VwapTracker):
        def on_quote(self, quote):
            pass

    assert Mixed()._bind_hooks() == {"on_trade": "cython", "on_book": "cython", "on_quote": "python"}


def test_cython_consumer_reads_the_ring_without_the_gil(downstream):
    import threading
    import numpy as np
    ring = extrema.Ring(256)
    consumer = ring.consumer("block")
    result = {}
    total = 200_000
    reader = threading.Thread(target=lambda: result.setdefault("r", downstream.sum_sequences_nogil(consumer, total)))
    reader.start()
    records = extrema.empty_records(total)
    records["sequence"] = np.arange(total)
    for start in range(0, total, 1000):
        ring.publish(records[start:start + 1000], timeout=30)   # needs the reader to run meanwhile
    reader.join(30)
    assert result["r"] == (total, total * (total - 1) // 2)
