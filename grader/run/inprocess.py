"""An in-process executor: a notebook's cells run in the grader's own process, for tests.

**Trusted code only.** Nothing here isolates anything: the code runs with the grader's rights,
in its memory, beside its reference. It exists so that the check logic, the diagnoses, the
credit policy and the bug corpus can be tested in milliseconds on tiny notebooks made from the
reference, while the real sandbox keeps its end-to-end tests.

It is the sandbox's own runtime (``inside/runtime.py``) with the process boundary taken away:
each request still travels as the wire's bytes (``inside/wire.py``: framed, measured, decoded)
and each answer is checked by ``grader.run.replies`` as a sandbox's is, through the same
``Session`` (``grader.run.session``: cells, restarts, notices, budgets). What it leaves out: the
runtime guard against forbidden library calls, which rewrites NumPy in the process it runs in
(the static scan, ``grader.checks.shortcuts``, still runs), and the clean-up of processes
student code leaves behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from grader.core.notebook import Notebook
from grader.run.inside import runtime, wire
from grader.run.layers import ALL_LAYERS, SandboxConfig
from grader.run.sandbox import SandboxTimedOut, open_data
from grader.run.session import Session


class InProcessSandbox:
    """The sandbox's interface (start, request, output, close) over a runtime in this process."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.layers: list[str] = []
        self.missing = list(ALL_LAYERS)
        self.zygote_lost = False
        self._runtime: runtime.Runtime | None = None
        self._data: dict[str, int] = {}
        self._sent = 0
        self._output = io.StringIO()

    def start(self) -> None:
        self._data = open_data(self.config.data_dir)
        self._runtime = runtime.Runtime(self._data)

    @property
    def alive(self) -> bool:
        return self._runtime is not None

    def request(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """The runtime's answer, as a sandbox's arrives: encoded, framed and decoded again."""
        if self._runtime is None:
            raise SandboxTimedOut("the in-process runtime is closed")
        self._sent += 1
        line = wire.frame(self._sent, message)
        number, request = wire.unframe(line.rstrip(b"\n"))
        limit = wire.reply_limit(request.get("op"), len(line))
        with self._alarm(), self._printed():
            if request.get("op") != "exec":
                runtime._seed_globals()  # as the runtime does before each call
            answer = runtime._handle(self._handlers(), request)
        encoded = runtime._encode(answer, number, limit)
        return wire.unframe(encoded.rstrip(b"\n"), limit=limit)[1]

    def output(self) -> str:
        return self._output.getvalue()[: self.config.limits.output_kb * 1024]

    def close(self) -> None:
        for fd in self._data.values():
            os.close(fd)
        self._data, self._runtime = {}, None

    def _handlers(self) -> dict[str, Any]:
        box = self._runtime
        assert box is not None
        return {"exec": box.op_exec, "call": box.op_call, "fetch": box.op_fetch,
                "calls": box.op_calls, "put": box.op_put, "step": box.op_step,
                "guards": box.op_guards}

    @contextlib.contextmanager
    def _printed(self) -> Iterator[None]:
        """What the notebook prints, and the warnings it raises, go to its output, as a
        sandbox's stdout and stderr do (never to the test run's own report)."""
        def shown(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
            self._output.write(warnings.formatwarning(message, category, filename, lineno))

        with contextlib.redirect_stdout(self._output), contextlib.redirect_stderr(self._output), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = shown
            yield

    @contextlib.contextmanager
    def _alarm(self) -> Iterator[None]:
        """The runtime's time limits raise through SIGALRM, as inside: in the main thread."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        before = signal.signal(signal.SIGALRM, runtime._on_alarm)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)


@dataclass
class InProcessSession(Session):
    """A ``Session`` whose notebook runs in this process (``grader.core.calls.Session``)."""

    def private(self) -> InProcessSession:
        config = SandboxConfig(mode="off", allow_unisolated=True, limits=self.config.limits)
        return InProcessSession(self.notebook, config, cell_timeout=self.cell_timeout,
                                setup_budget=self.setup_budget, machine_pace=self.machine_pace)

    def _new_sandbox(self) -> Any:
        box = InProcessSandbox(self.config)
        box.start()
        return box

    @property
    def layers(self) -> dict[str, Any]:
        return {"mode": "in-process", "layers": [], "missing": list(ALL_LAYERS)}


def session(notebook: Notebook, *, data: Any = None, cell_timeout: float = 10.0,
            setup_budget: float = 30.0, deadline: float | None = None,
            machine_pace: float | None = None) -> InProcessSession:
    """A session of ``notebook`` (trusted code) in this process, not started yet; ``data``: the
    MNIST arrays it may read, as a folder of ``.npy`` files or ``sealed.Arrays``."""
    config = SandboxConfig(mode="off", allow_unisolated=True, data_dir=data)
    return InProcessSession(notebook, config, cell_timeout=cell_timeout,
                            setup_budget=setup_budget, deadline=deadline,
                            machine_pace=machine_pace)
