"""The `fixtures_dir` fixture: missing fixtures skip a local run but fail a CI run (never a silent skip)."""

import os
import subprocess
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
USES_FIXTURES = "def test_it(fixtures_dir):\n    print('FIXTURES', fixtures_dir)\n    assert fixtures_dir.is_dir()\n"


def run_with(tmp_path, env_overrides):
    """pytest on one test that uses `fixtures_dir`, with tests/conftest.py loaded and CI /
    EXTREMA_FIXTURES taken only from env_overrides."""
    (tmp_path / "test_uses_fixtures.py").write_text(USES_FIXTURES)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "EXTREMA_FIXTURES")}
    env.update(env_overrides)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-rs", "-p", "conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_missing_fixtures_skip_locally(tmp_path):
    result = run_with(tmp_path, {"EXTREMA_FIXTURES": str(tmp_path / "nowhere")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "EXTREMA_FIXTURES" in result.stdout


def test_missing_fixtures_fail_in_ci(tmp_path):
    result = run_with(tmp_path, {"EXTREMA_FIXTURES": str(tmp_path / "nowhere"), "CI": "true"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout and "CI must run every test" in result.stdout


def test_env_var_points_at_the_fixtures(tmp_path):
    (tmp_path / "fx").mkdir()
    result = run_with(tmp_path, {"EXTREMA_FIXTURES": str(tmp_path / "fx"), "CI": "true"})
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_default_location_is_next_to_the_checkout(tmp_path):
    """Without EXTREMA_FIXTURES the fixture looks in <repo>/../shared/fixtures: the path shows up either
    as the fixture's value or in the skip message, whether or not that directory exists here."""
    result = run_with(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(TESTS_DIR.parent.parent / "shared" / "fixtures") in result.stdout
