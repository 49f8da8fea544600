"""Backtests: the same strategy objects that trade live, over recorded data, against a simulated exchange.

    from extrema.backtest import Backtest, ConstantLatency, ProbabilisticQueue, Fees
    result = Backtest(registry, source, [MyStrategy()], latency=ConstantLatency(entry_us=300, response_us=300),
                      queue=ProbabilisticQueue(), fees=Fees(maker=0.0002, taker=0.0005)).run()

See runner.py (the driver), models.py (latency / queue / fee models), results.py (what a run returns; stats.py,
report.py and sweep.py read it) and
extrema/_core/backtest.pyx (the compiled simulated exchange and replay loop)."""
from extrema.backtest.models import ConservativeQueue, ConstantLatency, DataLatency, Fees, ProbabilisticQueue
from extrema.backtest.results import BacktestResult
from extrema.backtest.runner import Backtest, SimulatedExecutionClient
from extrema.backtest.sweep import sweep, sweep_table

__all__ = ["Backtest", "BacktestResult", "ConstantLatency", "DataLatency", "ConservativeQueue",
           "ProbabilisticQueue", "Fees", "SimulatedExecutionClient", "sweep", "sweep_table"]
