import logging

import pytest


@pytest.fixture(autouse=True)
def restore_logging():
    """main() configures logging as a command should; put the test process's logging back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("extrema", "extrema.risk", "extrema.reconcile")}
    yield
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
