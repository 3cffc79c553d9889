"""Run a notebook's cells in the sandbox and serve the checks' calls: the second stage.

The session survives anything the student's code does. A cell or a call that hangs, even one
that ignores every signal, is killed with its sandbox; a fresh sandbox then replays the cells
that had worked (and skips the one that hung), and grading goes on. A function that had to be
killed that way is not called again (each such call would cost its timeout and a restart), and
once the setup budget is spent, later cells run only their imports and definitions. Each such
event becomes a notice or a test result; none of them stops the batch.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any

from grader.core import pace
from grader.core.calls import CallOutcome
from grader.core.errors import InfrastructureError
from grader.core.notebook import CodeCell, Notebook
from grader.run import replies, zygote
from grader.run.layers import SandboxConfig, program_note
from grader.run.sandbox import Sandbox, SandboxCrashed, SandboxTimedOut, ZygoteLost

MAX_RESTARTS = 12
INTERFERED_SHORT = "your notebook interfered with the grader"
INTERFERED = (f"{INTERFERED_SHORT.capitalize()}: an answer from its sandbox had a form the "
              f"grader's own runtime never sends (something in the notebook replaced or changed "
              f"it). Every request answered that way gives no points; grade it again once the "
              f"notebook only defines and calls its own functions")


@dataclass
class Session:
    """A started notebook: cells executed, ready for calls (``grader.core.calls.Session``)."""

    notebook: Notebook
    config: SandboxConfig
    cell_timeout: float = 10.0
    setup_budget: float = 30.0
    # time.monotonic() by which everything of this submission must be done (grader.core.budgets'
    # total budget): no call may run past it, so one submission cannot hold a worker for long
    deadline: float | None = None
    # where its sandboxes' zygotes come from (``grader.run.zygote``): this process's, by default
    pool: zygote.ZygotePool | None = None
    # the grader's own pace when the budgets were set (``grader.core.pace``), to tell a
    # student's timeout from a busy machine's; None believes every timeout
    machine_pace: float | None = None
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _sandbox: Sandbox | None = None
    _good_cells: list[int] = field(default_factory=list)
    _skipped_cells: set[int] = field(default_factory=set)
    _partial_cells: set[int] = field(default_factory=set)  # stopped by their timeout
    _data_victims: list[int] = field(default_factory=list)  # NameErrors of skipped data cells
    _stuck: dict[str, str] = field(default_factory=dict)  # function -> why it is not called
    _restarts: int = 0
    _output: list[str] = field(default_factory=list)

    # -- lifecycle --
    def start(self) -> None:
        began = time.perf_counter()
        self._sandbox = self._new_sandbox()
        self.timings["sandbox_start"] = time.perf_counter() - began
        began = time.perf_counter()
        self._run_cells(first_time=True)
        self.timings["run_cells"] = time.perf_counter() - began

    def close(self) -> None:
        self._retire_sandbox()

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def layers(self) -> dict[str, Any]:
        box = self._sandbox or Sandbox(self.config)
        return {"mode": self.config.mode, "layers": box.layers, "missing": box.missing}

    def private(self) -> Session:
        """A second session of this notebook in a sandbox of its own, with no data and none of
        this one's deadline (the culprit search keeps to its own budget)."""
        return Session(self.notebook, dataclasses.replace(self.config, data_dir=None),
                       machine_pace=self.machine_pace,
                       cell_timeout=self.cell_timeout, setup_budget=self.setup_budget,
                       pool=self.pool)

    def output(self) -> str:
        """Everything the student's code printed, over all sandboxes of this session."""
        current = self._sandbox.output() if self._sandbox is not None else ""
        return "".join(self._output) + current

    # -- calls --
    def call(
        self,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float,
        store: str | None = None,
        reply: Any = "value",
        return_inputs: bool = False,
        keep_args: str | None = None,
        warnings: str | None = None,
    ) -> CallOutcome:
        if function in self._stuck:
            return self._timed_out(CallOutcome(False, kind="timeout",
                                               error=self._stuck[function]))
        if self.out_of_time:
            return self._timed_out(CallOutcome(False, kind="budget",
                                               error="the total time budget ran out"))
        timeout = self._within_deadline(timeout)
        request = {
            "op": "call", "function": function, "args": args, "kwargs": kwargs or {},
            "timeout": timeout, "store": store, "reply": reply, "return_inputs": return_inputs,
            "keep_args": keep_args, "warnings": warnings,
        }
        began = time.perf_counter()  # (the answer's own "seconds" is the student's claim)
        answer = self._request(request, timeout=timeout, what=f"`{function}`")
        seconds = time.perf_counter() - began
        if answer is None:
            self._stuck[function] = f"no answer within {timeout:g} s, even when asked to stop"
            self._notice(f"`{function}` would not stop when asked after {timeout:g} s, so its "
                         f"sandbox was killed; it was not called again")
            return self._timed_out(CallOutcome(False, kind="timeout",
                                               error=self._stuck[function]))
        if isinstance(answer, str):
            return CallOutcome(False, kind="crash", error=answer)
        if answer["ok"]:
            self._record_time(function, seconds)
        return self._timed_out(CallOutcome(
            ok=answer["ok"],
            value=answer.get("value"),
            kind=answer.get("kind", ""),
            error=answer.get("error", ""),
            traceback=answer.get("traceback", ""),
            seconds=seconds,
            inputs=answer.get("inputs"),
            guards=tuple(answer.get("guards", ())),
        ))

    def pipeline(self, calls: list[dict[str, Any]], *, timeout: float,
                 each: float) -> tuple[int, CallOutcome]:
        """Several calls in one request (``runtime.op_calls``): each ``{"function", "args",
        "store"}`` (or ``{"op": "step", ...}``) with ``each`` seconds of its own, all within
        ``timeout``. Returns how many succeeded and the outcome of the first that did not
        (an ``ok`` outcome when all did). For loops the grader runs whose single calls are
        far cheaper than a round trip."""
        if self.out_of_time:
            return 0, self._timed_out(CallOutcome(False, kind="budget",
                                                  error="the total time budget ran out"))
        timeout = self._within_deadline(timeout)
        each = min(each, timeout)
        request = {"op": "calls", "calls": [{**c, "op": c.get("op", "call"), "timeout": each}
                                            for c in calls]}
        answer = self._request(request, timeout=timeout, what="the grader's calls")
        if answer is None:
            return 0, self._timed_out(CallOutcome(False, kind="timeout",
                                                  error=f"no answer within {timeout:g} s"))
        if isinstance(answer, str):
            return 0, CallOutcome(False, kind="crash", error=answer)
        if answer["ok"]:
            return len(calls), CallOutcome(True, guards=tuple(answer.get("guards", ())))
        at = min(answer["at"], len(calls) - 1)
        return at, self._timed_out(CallOutcome(False, kind=answer["kind"], error=answer["error"],
                                               traceback=answer.get("traceback", "")))

    def request(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any] | str | None:
        """A raw request: the answer, a crash description (str), or None on timeout."""
        if self.out_of_time:
            return None
        timeout = self._within_deadline(timeout)
        message = {**message, "timeout": timeout} if "timeout" in message else message
        began = time.perf_counter()
        answer = self._request(message, timeout=timeout)
        if isinstance(answer, dict) and answer.get("ok"):
            self._record_time(str(message.get("op")), time.perf_counter() - began)
        return answer

    @property
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def stuck(self, function: str) -> str | None:
        """Why ``function`` is no longer called (it had to be killed), or None."""
        return self._stuck.get(function)

    def _timed_out(self, outcome: CallOutcome) -> CallOutcome:
        """A timeout measured while the machine was busy says so (``CallOutcome.busy``): the
        grader's own pace, taken now in its own process, against the pace when the budgets were
        set. Only the kind matters here (a student who claims a timeout gets none of the
        call's points either way); the pace is never the student's to report."""
        if outcome.kind not in ("timeout", "budget"):
            return outcome
        return dataclasses.replace(outcome, busy=self.busy())

    def busy(self) -> float | None:
        return pace.busy(self.machine_pace)

    def _within_deadline(self, timeout: float) -> float:
        if self.deadline is None:
            return timeout
        return max(min(timeout, self.deadline - time.monotonic()), 0.1)

    def record_time(self, what: str, seconds: float) -> None:
        """Keep how long something took that the grader measured around several requests
        (the fixed network's training), as the canary's measure for budgets."""
        self._record_time(what, seconds)

    def _record_time(self, what: str, seconds: float) -> None:
        """The longest call of each function (and request), as the canary's measure of the
        reference's times that budgets follow."""
        key = f"call:{what}"
        self.timings[key] = max(self.timings.get(key, 0.0), seconds)

    # -- internals --
    def _request(self, message: dict[str, Any], *, timeout: float,
                 what: str = "the grader's request", retry: bool = True,
                 first_loss: ZygoteLost | None = None) -> dict[str, Any] | str | None:
        """The answer, a crash description (the student's), or None on a timeout."""
        if self._sandbox is None or not self._sandbox.alive:
            # (a lost zygote is the machine's business: nothing to tell the student)
            lost = self._sandbox is not None and self._sandbox.zygote_lost
            reason = None if lost else "the sandbox had stopped"
            if not self._restart(reason):
                return "the sandbox could not be restarted"
        try:
            return self._checked(message, self._live().request(message, timeout=timeout), what)
        except ZygoteLost as lost:
            # the machine's fault, not the student's: a fresh zygote, the cells again, and the
            # same request once more
            self._restart(None)
            if retry:
                return self._request(message, timeout=timeout, what=what, retry=False,
                                     first_loss=lost)
            if _lost_to_memory(first_loss, lost):
                return self._out_of_memory_note()
            raise _zygote_lost_twice() from None
        except SandboxTimedOut:
            self._restart(None)
            return None
        except SandboxCrashed as exc:
            self._restart(None)
            return str(exc)

    def _checked(self, message: dict[str, Any], answer: Any, what: str) -> dict[str, Any] | str:
        """The answer rebuilt from its checked parts (``grader.run.replies``), or, where the
        notebook forged it, a description of the interference: that request's failure, as a
        crash is. The sandbox keeps running: its answers stay in step, and each one is
        checked again."""
        try:
            checked = replies.checked(str(message.get("op")), answer)
        except replies.Interference as exc:
            self._notice(INTERFERED)
            return f"{INTERFERED_SHORT} ({exc})"
        self._note_strays(checked, what)
        return checked

    def _live(self) -> Sandbox:
        """The sandbox, which the start or ``_restart`` made before any request is sent."""
        assert self._sandbox is not None
        return self._sandbox

    def _out_of_memory_note(self) -> str:
        return (f"the sandboxed process ran out of memory (the limit is "
                f"{self.config.limits.memory_mb} MB) and was killed")

    def _restart(self, reason: str | None) -> bool:
        """A fresh sandbox with the cells that had worked, so later tests still run."""
        if self._restarts >= MAX_RESTARTS:
            return False
        self._restarts += 1
        if reason:
            self.notices.append(reason)
        self._retire_sandbox()
        self._sandbox = self._new_sandbox()
        self._run_cells(first_time=False)
        return True

    def _new_sandbox(self) -> Sandbox:
        """A started sandbox for this session (the seam ``grader.run.inprocess`` replaces)."""
        return _started_sandbox(self.config, self.pool or zygote.process_pool())

    def _run_cells(self, *, first_time: bool) -> None:
        """Run the cells (or, after a restart, replay the ones that worked). Past the setup
        budget, and on replays of cells that were stopped, only imports and definitions run:
        they cost nothing, and they are what the checks need."""
        deadline, noted = time.monotonic() + self.setup_budget, not first_time
        for cell in self.notebook.cells:
            if cell.index in self._skipped_cells or not cell.source.strip():
                continue
            if not first_time and cell.index not in self._good_cells:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not noted:
                noted = True
                self._notice(f"the setup budget of {self.setup_budget:g} s was used up before "
                             f"{_cell(cell.index)}: from there on only imports and definitions "
                             f"ran")
            # (a top-level download or training would fail or waste the budget: the grader
            # has no network and trains the network itself)
            definitions_only = (remaining <= 0 or cell.index in self._partial_cells
                                or cell.loads_data)
            budget = max(min(self.cell_timeout, remaining), 0.5)
            answer = self._exec_cell(cell.index, cell.source, budget, definitions_only)
            if first_time:
                self._note_cell(cell, answer, budget)
            if first_time and isinstance(answer, dict) and answer.get("out_of_memory"):
                self._forget_memory(cell.index)
        if first_time:
            self._note_data_cells()

    def _exec_cell(self, index: int, source: str, budget: float,
                   definitions_only: bool = False, retry: bool = True,
                   first_loss: ZygoteLost | None = None) -> dict[str, Any] | str | None:
        message = {"op": "exec", "cell": index, "source": source, "timeout": budget,
                   "definitions_only": definitions_only}
        try:
            return self._checked(message, self._live().request(message, timeout=budget),
                                 _cell(index))
        except ZygoteLost as lost:
            if retry:
                self._restart(None)  # (replays the cells before this one; the machine's fault)
                return self._exec_cell(index, source, budget, definitions_only, retry=False,
                                       first_loss=lost)
            if not _lost_to_memory(first_loss, lost):
                raise _zygote_lost_twice() from None
            self._skipped_cells.add(index)  # as for any cell that killed its sandbox
            self._restart(None)
            return self._out_of_memory_note()
        except SandboxCrashed as exc:
            # the cell killed or hung its sandbox: skip it from now on and carry on without it
            self._skipped_cells.add(index)
            self._restart(None)
            return None if isinstance(exc, SandboxTimedOut) else str(exc)

    def _note_cell(self, cell: CodeCell, answer: Any, budget: float) -> None:
        index, name = cell.index, _cell(cell.index)
        if cell.magics:
            shown = ", ".join(f"`{m[:60]}`" for m in cell.magics[:3])
            self.notices.append(
                f"{name}: IPython magics and shell commands were not run: {shown}")
        if answer is None:
            self.notices.append(
                f"{name} was stopped after {budget:g} s and skipped (it would not stop when "
                f"asked); the grader does not need your experiments to run"
            )
            return
        if isinstance(answer, str):
            self.notices.append(f"{name} stopped the notebook ({answer}); it was skipped")
            return
        self._good_cells.append(index)
        if answer.get("timed_out"):
            self._partial_cells.add(index)
            self.notices.append(
                f"{name} was stopped after {budget:g} s; the definitions in it still count"
            )
        errors = answer.get("errors", [])
        if errors and self._needs_data(errors[0]):
            self._data_victims.append(index)
        elif errors:
            more = f" (and {len(errors) - 1} failing definitions after it)" if errors[1:] else ""
            self.notices.append(
                f"{name} raised an error at {errors[0].rstrip('.')}{more}. As in Jupyter, the "
                f"rest of the cell did not run (only its imports and definitions did)")
        if not answer.get("ok") and answer.get("error"):
            self.notices.append(f"{name} was not run: {answer['error']}")

    def _needs_data(self, error: str) -> bool:
        """A NameError for something a skipped download or training cell would have defined."""
        match = re.search(r"NameError: name '(\w+)' is not defined", error)
        return match is not None and match.group(1) in self.notebook.data_names

    def _note_data_cells(self) -> None:
        """One kind notice for what fails in the grader whoever wrote it: downloading MNIST and
        training at the top level, and the cells that use what those would have defined."""
        skipped = [c.index for c in self.notebook.cells if c.loads_data]
        if not skipped:
            return
        text = (f"{_cells(skipped)} download MNIST or train at the top level: the grader skipped "
                f"those statements (it has no network, and it trains and tests your functions "
                f"itself), so they do not count for or against you")
        if self._data_victims:
            text += (f"; {_cells(self._data_victims)} stopped where "
                     f"{'they use' if len(self._data_victims) > 1 else 'it uses'} what they would "
                     f"have defined, which does not count either")
        self._notice(text)

    def _forget_memory(self, index: int) -> None:
        """What a cell built before it ran out of memory stays referenced (``hog.append`` in a
        loop) and would starve every later call: restart, and replay that cell's definitions
        only."""
        self._partial_cells.add(index)
        self._notice(f"{_cell(index)} ran out of memory (the limit is "
                     f"{self.config.limits.memory_mb} MB); the notebook was restarted without "
                     f"what it had built, and only its definitions count")
        self._restart(None)

    def _note_strays(self, answer: dict[str, Any], what: str) -> None:
        count = int(answer.get("strays") or 0)
        if count:
            self._notice(f"{what} left {count} process{'es' * (count > 1)} running (fork, "
                         f"subprocess or a daemon); the grader stopped "
                         f"{'them' if count > 1 else 'it'}")

    def _notice(self, text: str) -> None:
        """A notice, once: replays after a restart repeat what the cells did the first time."""
        if text not in self.notices:
            self.notices.append(text)

    def _retire_sandbox(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._output.append(self._sandbox.output())
            self._sandbox = None


def _cell(index: int) -> str:
    """A cell as the student finds it: Jupyter numbers code cells ``In [n]`` top to bottom."""
    return f"cell In [{index}]"


def _cells(indices: list[int]) -> str:
    shown = [f"In [{i}]" for i in indices]
    if len(shown) == 1:
        return f"cell {shown[0]}"
    return f"cells {', '.join(shown[:-1])} and {shown[-1]}"


START_ATTEMPTS = 3


def _lost_to_memory(first: ZygoteLost | None, second: ZygoteLost) -> bool:
    """Whether the kernel's memory killer struck while the same code ran, both times its zygote
    was lost: then the student's memory took the machine's (their out-of-memory, and the batch
    goes on); once alone proves nothing."""
    return first is not None and first.machine_out_of_memory and second.machine_out_of_memory


def _zygote_lost_twice() -> InfrastructureError:
    return InfrastructureError(
        "the sandbox's zygote stopped twice under the same request. That is the machine's "
        "fault, not a student's (nothing the student's code can do reaches the zygote), so "
        "grading stopped")


def _started_sandbox(config: SandboxConfig, pool: zygote.ZygotePool) -> Sandbox:
    """A running sandbox. It starts before any student code runs in it, so a start that fails
    again and again is the machine's fault: the batch stops rather than give the student a
    zero for it, naming the program that failed (``layers.program_note``: a bwrap that a
    system update removed mid-run, for instance), with each try's words in the detail for
    ``grader-error.txt``. (A few tries first: right after a hostile cell was killed, the
    machine may need a moment to free what it held.)"""
    tries: list[str] = []
    for attempt in range(START_ATTEMPTS):
        sandbox = Sandbox(config, pool=pool)
        try:
            sandbox.start()
            return sandbox
        except (SandboxCrashed, OSError) as exc:  # (OSError: its program could not be run)
            failure = str(exc)
            said = sandbox.output().strip()[-2000:]
            tries.append(f"try {attempt + 1}: {type(exc).__name__}: {exc}"
                         + (f"\nthe sandbox's process said:\n{said}" if said else ""))
            time.sleep(0.5 * (attempt + 1))
    raise InfrastructureError(
        f"the sandbox could not start ({failure}), {START_ATTEMPTS} times; "
        f"{program_note(sandbox.layers)}. That is the machine's fault, not a student's (no "
        f"student code had run in it), so grading stopped", "\n\n".join(tries))
