"""The `extrema` command line (console script `extrema = "extrema.cli:main"`).

    extrema demo | sim | run CONFIG.toml | backtest | record | bench      (`extrema --help`)

`main(argv=None) -> int` is the entry point; commands live in `extrema.cli.commands`, the live report
adapter (`LiveTape`, `result_from_engine`) in `extrema.cli.report`.
"""
import sys

from extrema.cli.main import build_parser, main as _main


def main(argv=None) -> int:
    code = _main(argv)
    if argv is None:
        sys.exit(code)
    return code


__all__ = ["main", "build_parser"]
