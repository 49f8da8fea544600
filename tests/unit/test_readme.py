"""The README's commands and example stay true."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(line for b in blocks for line in b.splitlines() if "pytest" in line and "venv" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.strip() in ci.splitlines()


def test_readme_examples_run():
    book_example, engine_example = re.findall(r"```python\n(.*?)```", README, re.S)
    namespace = {}
    exec(compile(book_example, "README.md", "exec"), namespace)
    book = namespace["book"]
    assert (book.best_bid, book.best_ask) == (60000.0, 60000.4)
    assert abs(book.spread - 0.4) < 1e-9 and book.last_update_id == 101

    import extrema
    records = extrema.empty_records(3)
    records["kind"] = extrema.RecordKind.TRADE
    records["instrument_id"] = namespace["btc"].id
    records["price"] = 6_000_000
    records["quantity"] = [100, 2_000_000, 300]          # the middle one is larger than 10 BTC
    namespace["records"] = records
    exec(compile(engine_example, "README.md", "exec"), namespace)
    stats = namespace["engine"].stats()
    assert stats["published"] == 3 and stats["dispatcher"]["delivered"] == 3
