"""Every example runs (briefly) as a user would run it."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script, args, expect", [
    ("book_demo.py", [], "applied 1,000,000 depth records"),
    ("engine_demo.py", ["--seconds", "0.5"], "records read on another thread"),
    ("sim_demo.py", ["--seconds", "4"], "orders sent over the WebSocket API"),
    ("sim_demo.py", ["--seconds", "4", "--market", "usdm"], "orders sent over the WebSocket API"),
])
def test_example_runs(script, args, expect):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout, out.stdout
