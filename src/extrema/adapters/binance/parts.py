"""What the Binance venue's sources and its execution client have in common."""
from __future__ import annotations


class VenuePart:
    """A piece of a BinanceVenue that runs on the engine's loop: it shares the venue's REST client
    (closed when the engine stops) and reports its counters, its decoder's and its connection's."""

    rest = None
    counters: dict
    decoder = None
    session = None

    async def aclose(self):
        """The engine calls this when it stops: the REST client's connections close on their loop."""
        await self.rest.close()

    def stats(self):
        out = dict(self.counters)
        if self.decoder is not None:
            out["decoder"] = self.decoder.stats()
        if self.session is not None:
            out["connection"] = self.session.stats.as_dict()
        return out
