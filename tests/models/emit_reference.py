"""Reference model (plain Python) of extrema._core.emit.Emitter: the engine's record path as it was written
in Python (Engine._emit) before it was compiled, through each part's Python API."""


def reference_emit(engine, records):
    if engine._emit.stopping and engine.dispatcher.stop_requested:
        return
    core = engine.execution_core
    core.process(records)                 # orders, fills, marks, stops: before strategies see them
    # pieces of whole events of at most the ring's capacity, the dispatcher draining the ring after each
    # (Engine._emit published the whole batch at once: a batch larger than the ring waited for itself)
    cap, start = engine.ring.capacity, 0
    while start < len(records):
        end = start
        while end < len(records):
            size = 1 + (int(records["flags"][end]) >> 12)       # a head and its continuation slots
            if end + size - start > cap:
                break
            end += size
        engine.ring.publish(records[start:end])
        engine.dispatcher.pump(engine._consumer)
        start = end
    engine._emit.published += len(records)
    core.after_dispatch()                 # stops that watch the books just updated
    if core.stops.pending:
        engine._submit_fired_stops()
    if engine.dispatcher.stop_requested:
        engine._request_stop("a strategy's error policy is 'stop'")
