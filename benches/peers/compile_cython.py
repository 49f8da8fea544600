"""Compile a Cython module against the *installed* extrema, the way a downstream project would.

Same recipe as `compile_against_extrema` in tests/unit/test_cimport.py (and examples/cython_strategy.pyx):
`cython -3 -I <dir holding the extrema package>` (the .pxd files ship in the package), then the C
compiler with Python's include dir and `extrema/_core` (the .h files), -O2 like a typical build.
Nothing is written into the repository: the module is built in a temporary directory.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def compile_against_extrema(source: str, name: str, *, opt: str = "-O2"):
    """Build `source` (a .pyx text) as module `name`; returns (module, seconds, compile command)."""
    import extrema
    import numpy

    t0 = time.perf_counter()
    pkg_dir = Path(extrema.__file__).parent
    work = Path(tempfile.mkdtemp(prefix="extrema-bench-cy-"))
    try:
        pyx = work / f"{name}.pyx"
        pyx.write_text(source)
        c_file = work / f"{name}.c"
        _run([sys.executable, "-m", "cython", "-3", "-I", str(pkg_dir.parent), str(pyx), "-o", str(c_file)])
        so = work / (name + sysconfig.get_config_var("EXT_SUFFIX"))
        cc = sysconfig.get_config_var("CC").split()
        cmd = cc + ["-shared", "-fPIC", opt, f"-I{sysconfig.get_paths()['include']}", f"-I{pkg_dir / '_core'}",
                    f"-I{numpy.get_include()}", str(c_file), "-o", str(so)]
        _run(cmd)
        spec = importlib.util.spec_from_file_location(name, so)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)     # the .so stays mapped after its file is removed
        sys.modules[name] = module
        return module, time.perf_counter() - t0, " ".join(cc + ["-shared", "-fPIC", opt])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... failed:\n{proc.stdout}\n{proc.stderr}")
