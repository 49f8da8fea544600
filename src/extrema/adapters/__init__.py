"""Venue adapters: pure-Python glue per exchange (REST, signing, symbols, websocket), decode kernels in
`extrema._core`. One sub-package per venue, e.g. `extrema.adapters.binance`."""
