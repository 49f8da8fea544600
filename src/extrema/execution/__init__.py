"""Order entry, order state, pre-trade risk and the portfolio.

* ExecutionClient / OrderRequest...: the interface strategies' orders go through (live venue clients, the
  simulator client and the backtest matching engine implement it), and a recording test double.
* ExecutionCore: the compiled, venue-independent core every execution client and the engine use: the
  order table (one state machine for every venue), the pre-trade risk chain, the portfolio (positions,
  P&L, balances) and the engine-side stops, fed from the record stream. See extrema._core.execution.
* reconcile(core, VenueSnapshot(...)): merge a venue's state after a start or a reconnect.
"""
from extrema.execution.client import (
    ExecutionClient, OrderRequest, CancelRequest, ReplaceRequest, RecordingExecutionClient)
from extrema._core.orders import OrderTable, OrderEventCode, IllegalTransitionError, ORDER_DTYPE
from extrema._core.portfolio import Portfolio, AssetRegistry, POSITION_DTYPE
from extrema._core.risk import (RiskEngine, RiskRule, RiskRejection, BreakerReason, REJECT_REASON_BASE,
                                estimate_fill)
from extrema._core.stops import StopManager
from extrema._core.execution import ExecutionCore
from extrema.execution.reconciliation import reconcile, VenueSnapshot, ReconcileEvent, RECONCILED_REASON

__all__ = ["ExecutionClient", "OrderRequest", "CancelRequest", "ReplaceRequest", "RecordingExecutionClient",
           "OrderTable", "OrderEventCode", "IllegalTransitionError", "ORDER_DTYPE",
           "Portfolio", "AssetRegistry", "POSITION_DTYPE",
           "RiskEngine", "RiskRule", "RiskRejection", "BreakerReason", "REJECT_REASON_BASE", "estimate_fill",
           "StopManager", "ExecutionCore", "reconcile", "VenueSnapshot", "ReconcileEvent", "RECONCILED_REASON"]
