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


def test_readme_example_runs():
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    book = namespace["book"]
    assert (book.best_bid, book.best_ask) == (60000.0, 60000.4)
    assert abs(book.spread - 0.4) < 1e-9 and book.last_update_id == 101
