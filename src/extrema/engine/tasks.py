"""Tasks: work that must not run on the engine thread (models, I/O, heavy maths), reached by
strategies through command channels (the seeds' CommandEmitter / CommandHandle).

A strategy calls `context.request("task name", payload)` and gets a request id at once; the task's
`handle(payload)` runs on the task's own thread; the answer comes back to the strategy's
`on_response(response)` hook on the engine thread, as an event like any other.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from typing import Any, Optional

log = logging.getLogger("extrema.engine")


@dataclasses.dataclass(frozen=True)
class CommandResponse:
    """What on_response receives: the answer to one request (or the error its handler raised)."""
    request_id: int
    task: str
    result: Any = None
    error: Optional[BaseException] = None

    @property
    def ok(self):
        return self.error is None


class Task:
    """Subclass and implement handle(payload) -> result. Runs on its own thread, one request at a time;
    start() / stop() are called on that thread before the first and after the last request."""

    name: str = ""

    def start(self):
        pass

    def handle(self, payload):
        raise NotImplementedError(f"{type(self).__name__} must implement handle(payload)")

    def stop(self):
        pass


class FunctionTask(Task):
    """A task from a plain function."""

    def __init__(self, fn):
        self.fn = fn

    def handle(self, payload):
        return self.fn(payload)


_STOP = object()


class TaskRunner:
    """Owns one task's thread and request queue; answers go back through `reply(response, strategy_index)`."""

    def __init__(self, name, task, reply):
        self.name = name
        self.task = task
        self._reply = reply
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=f"extrema-task-{name}", daemon=True)
        self.pending = 0
        self._lock = threading.Lock()

    def start(self):
        self._thread.start()

    def submit(self, request_id, strategy_index, payload):
        with self._lock:
            self.pending += 1
        self._queue.put((request_id, strategy_index, payload))

    def stop(self, timeout=10.0):
        """Finish the requests already queued (they were accepted), then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self):
        try:
            self.task.start()
        except Exception:
            log.exception("task %r failed to start", self.name)
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            request_id, strategy_index, payload = item
            try:
                response = CommandResponse(request_id, self.name, result=self.task.handle(payload))
            except Exception as exc:
                log.warning("task %r failed on request %d: %r", self.name, request_id, exc)
                response = CommandResponse(request_id, self.name, error=exc)
            with self._lock:
                self.pending -= 1
            self._reply(response, strategy_index)
        try:
            self.task.stop()
        except Exception:
            log.exception("task %r failed to stop", self.name)
