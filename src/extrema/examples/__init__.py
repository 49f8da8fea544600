"""Example strategies that ship with the package (what `extrema demo` runs); see `.strategies`."""
from extrema.examples.strategies import EmaCross, MarketMaker, Monitor, Trader, min_size, on_grid

__all__ = ["MarketMaker", "EmaCross", "Monitor", "Trader", "min_size", "on_grid"]
