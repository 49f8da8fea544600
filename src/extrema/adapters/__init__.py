"""Venue adapters: one package per venue (`extrema.adapters.binance`, ...) plus what they share
(`extrema.adapters.ws`: the reconnecting websocket session)."""
