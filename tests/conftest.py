"""Shared test fixtures.

Real exchange captures are not copied into the repo: they live in `../shared/fixtures` next to the
checkout (see DESIGN.md section 4), or wherever $EXTREMA_FIXTURES points. Pure-Python models used
as test oracles are in tests/models/ (this directory is on sys.path through pytest's rootdir conftest).
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    configured = os.environ.get("EXTREMA_FIXTURES")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "fixtures"
    if not path.is_dir():
        message = (f"exchange fixtures not found at {path}: set EXTREMA_FIXTURES to the shared/fixtures "
                   f"directory (real wire captures, see DESIGN.md section 4)")
        if os.environ.get("CI") == "true":
            pytest.fail(message + " -- CI must run every test, so this is an error there", pytrace=False)
        pytest.skip(message)
    return path
