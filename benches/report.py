#!/usr/bin/env python
"""Print a recorded result file as the markdown table used in benches/README.md.

    python benches/report.py benches/results/book.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def render(path: str) -> str:
    data = json.loads(Path(path).read_text())
    m = data["machine"]
    flags = m.get("extrema_build_flags")
    if isinstance(flags, dict):
        flags = flags.get("flags", flags)
    head = (f"`{data['suite']}` suite, {data.get('generated_at', '?')}: {m['cpu']}, {m['usable_cores']}/{m['cores']} "
            f"cores, {m.get('memory_gib')} GiB, {m['python']}, {m['platform']}, numpy {m.get('numpy')}, "
            f"extrema {m.get('extrema_version')} built with `{flags}`"
            f"{' (quick run)' if data.get('quick') else ''}; median of {data.get('repeats')} repeats; "
            f"load average at start {m.get('load_average_at_start')}.")
    return head + "\n\n" + harness.format_markdown(data["rows"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python benches/report.py benches/results/SUITE.json")
    print(render(sys.argv[1]))
