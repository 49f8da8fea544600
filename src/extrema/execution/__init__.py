"""Order entry: the execution-client interface strategies act through, and its test double.

The live venue clients, the simulator client and the backtest matching engine (later issues) all
implement ExecutionClient, so a strategy's `context.submit(...)` is the same call live, on paper and in
a backtest.
"""
from extrema.execution.client import (
    ExecutionClient, OrderRequest, CancelRequest, ReplaceRequest, RecordingExecutionClient)

__all__ = ["ExecutionClient", "OrderRequest", "CancelRequest", "ReplaceRequest", "RecordingExecutionClient"]
