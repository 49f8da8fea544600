"""Reference model (plain Python) of extrema._core.emit.Emitter: the engine's record path as it was written
in Python (Engine._emit) before it was compiled, through each part's Python API."""


def reference_emit(engine, records):
    if engine._emit.stopping and engine.dispatcher.stop_requested:
        return
    core = engine.execution_core
    core.process(records)                 # orders, fills, marks, stops: before strategies see them
    engine.ring.publish(records)
    engine._emit.published += len(records)
    engine.dispatcher.pump(engine._consumer)
    core.after_dispatch()                 # stops that watch the books just updated
    if core.stops.pending:
        engine._submit_fired_stops()
    if engine.dispatcher.stop_requested:
        engine._request_stop("a strategy's error policy is 'stop'")
