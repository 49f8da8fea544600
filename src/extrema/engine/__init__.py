"""The engine: builder, engine thread, strategy context, tasks and sources."""
from extrema.engine.engine import Engine, EngineBuilder, ERROR_POLICIES
from extrema.engine.context import Context
from extrema.engine.tasks import Task, FunctionTask, CommandResponse
from extrema.engine.sources import RecordSource

__all__ = ["Engine", "EngineBuilder", "ERROR_POLICIES", "Context", "Task", "FunctionTask",
           "CommandResponse", "RecordSource"]
