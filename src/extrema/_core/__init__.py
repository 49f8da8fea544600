"""Compiled core of extrema. Users import from `extrema`, never from here."""
