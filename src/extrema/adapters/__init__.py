"""Venue adapters: pure-Python glue per exchange (REST, signing, symbols, order entry), decode kernels in
`extrema._core`. One sub-package per venue (`extrema.adapters.binance`, ...), plus what they share:
`extrema.adapters.ws`, the reconnecting websocket session."""
