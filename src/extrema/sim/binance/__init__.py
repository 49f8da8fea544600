"""The simulated Binance spot and USD-M markets (see extrema.sim)."""

from .auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, RateLimits
from .server import BinanceSimulator

__all__ = ["BinanceSimulator", "RateLimits", "DEFAULT_API_KEY", "DEFAULT_API_SECRET"]
