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
from libc.stdint cimport int64_t

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


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    pkg_dir = Path(extrema.__file__).parent
    site = pkg_dir.parent
    work = tmp_path_factory.mktemp("downstream")
    pyx = work / "downstream_strategy.pyx"
    pyx.write_text(DOWNSTREAM)
    c_file = work / "downstream_strategy.c"
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", str(site), str(pyx), "-o", str(c_file)],
                   check=True, capture_output=True, text=True)
    so = work / ("downstream_strategy" + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = sysconfig.get_config_var("CC").split()
    subprocess.run(cc + ["-shared", "-fPIC", "-O2", f"-I{sysconfig.get_paths()['include']}",
                         f"-I{pkg_dir / '_core'}", str(c_file), "-o", str(so)],
                   check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location("downstream_strategy", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
