"""The process that runs student code, inside the sandbox.

It imports only the standard library, NumPy and its siblings in ``grader/inside`` (which are the
only part of the grader mounted into the sandbox). It never sees a reference solution, a rubric
or a test label: the grader sends inputs, this process calls the student's functions and sends
back plain values. Scores are computed elsewhere, so nothing done here can raise one.

Protocol: requests arrive as JSON lines on one inherited pipe, responses leave on another, each
line starting with its request's number (the grader takes an answer out of turn, or one larger
than its kind of request allows, as a broken sandbox: see ``wire``); the
student's stdout and stderr go to a third pipe that the grader drains and truncates. After each
request, processes the student's code left running are killed and counted (``strays``).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.abc
import importlib.util
import io
import os
import random
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from . import wire
from .limits import reap_strays

FETCH_ITEM_BYTES = wire.REPLY_BYTES["fetch"] - (1 << 20)  # what a fetch answer can carry
MAX_SEND_BYTES = 64 << 20  # an array larger than this is not sent back (the grader never needs it)


class CallTimeout(BaseException):
    """Raised by the alarm when a cell or a call runs past its limit (BaseException, so that a
    plain ``except Exception`` in student code does not swallow it)."""


def _on_alarm(signum: int, frame: types.FrameType | None) -> NoReturn:  # noqa: ARG001
    raise CallTimeout()


class _Alarm:
    def __init__(self, seconds: float | None):
        self.seconds = seconds

    def __enter__(self) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _describe(exc: BaseException, limit: int = 600) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _student_traceback(exc: BaseException) -> str:
    """The frames from student code only (file names '<cell N>'), most recent last."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    lines = [f"{f.filename}, line {f.lineno}, in {f.name}: {f.line or ''}".strip() for f in frames]
    return "\n".join(lines[-6:])


class Runtime:
    def __init__(self, data: dict[str, int]):
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.stored: dict[str, Any] = {}
        self.data = data  # name -> a read-only file descriptor the grader opened
        self._maps: dict[str, np.ndarray] = {}  # name -> its read-only map, made once
        self.guard_log: list[str] = []

    # --- notebook cells -------------------------------------------------------------------
    def op_exec(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one cell statement by statement. As in Jupyter, the first failing statement stops
        the cell, but the definitions after it still run (``_is_definition``: they cost nothing
        and the checks need them), so one broken plot never hides the functions below it."""
        index, source, timeout = request["cell"], request["source"], request.get("timeout")
        filename = f"<cell {index}>"
        try:
            tree = ast.parse(source, filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            return {"ok": False, "error": _syntax_error(exc)}
        errors: list[str]
        errors, timed_out, out_of_memory = [], False, False
        only_definitions = bool(request.get("definitions_only"))
        deadline = time.monotonic() + timeout if timeout else None
        for node in tree.body:
            if (timed_out or only_definitions or errors) and not _is_definition(node):
                continue  # after a timeout or an error only definitions still run
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
                with _Alarm(None if timed_out else remaining):
                    exec(code, self.namespace)
            except CallTimeout:
                timed_out = True
            except BaseException as exc:  # noqa: BLE001 - student code may raise anything
                if isinstance(exc, KeyboardInterrupt):
                    timed_out = True
                    continue
                out_of_memory = out_of_memory or isinstance(exc, MemoryError)
                errors.append(f"line {node.lineno}: {_describe(exc, 300)}")
        return {"ok": not errors and not timed_out, "errors": errors[:20], "timed_out": timed_out,
                "out_of_memory": out_of_memory}

    # --- calls ----------------------------------------------------------------------------
    def op_call(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["function"]
        function = self.namespace.get(name)
        if function is None:
            return {"ok": False, "kind": "missing", "error": f"{name} is not defined"}
        if not callable(function):
            return {"ok": False, "kind": "missing", "error": f"{name} is not a function"}
        args = [self._resolve(a) for a in request.get("args", [])]
        kwargs = {k: self._resolve(v) for k, v in request.get("kwargs", {}).items()}
        if request.get("keep_args"):
            self.stored[request["keep_args"]] = args
        guards_before = len(self.guard_log)
        started = time.perf_counter()
        strict = (np.errstate(over="raise", invalid="raise", divide="raise")
                  if request.get("warnings") == "error" else contextlib.nullcontext())
        try:
            with _Alarm(request.get("timeout")):
                with strict:  # (only the call: turning the result into data is the grader's)
                    result = function(*args, **kwargs)
                seconds = time.perf_counter() - started
                # turning the result into plain data runs student code too (__iter__, __len__,
                # subclasses...), so it happens under the same alarm and the same except
                value = _plain(result, request.get("reply", "value"))
                inputs = [_plain(a) for a in args] if request.get("return_inputs") else None
        except CallTimeout:
            return {"ok": False, "kind": "timeout", "error": "time limit reached"}
        except NotImplementedError as exc:
            return {"ok": False, "kind": "not_implemented", "error": _describe(exc)}
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                kind = "exit"
            else:
                kind = "exception"
            return {
                "ok": False,
                "kind": kind,
                "error": _describe(exc),
                "traceback": _student_traceback(exc),
            }
        if request.get("store"):
            self.stored[request["store"]] = result
        guards = sorted(set(self.guard_log[guards_before:]))
        return {"ok": True, "seconds": seconds, "inputs": inputs, "guards": guards, "value": value}

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and "__ref__" in value:
            stored = self.stored[value["__ref__"]]
            return stored[value["index"]] if value.get("index") is not None else stored
        if isinstance(value, dict) and "__data__" in value:
            name = value["__data__"]
            if name not in self._maps:  # (a loop's thousands of batches read the same file)
                self._maps[name] = _map_npy(self.data[name])
            data = self._maps[name].view()  # (each call its own array object)
            if "rows" not in value:
                return data
            return np.asarray(data[np.asarray(value["rows"], dtype=np.int64)],
                              dtype=value.get("dtype", data.dtype))
        return value

    def op_fetch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send back stored values, e.g. the forward's arguments after the backward ran (to see
        whether the student's code changed its inputs in place), or one ``item`` of one (the
        trained model's ``W1``: indexing may run student code, so under the alarm)."""
        value: Any = self.stored.get(request["key"])  # (None: indexing it fails below)
        if "item" not in request:
            return {"ok": True, "value": _plain(value)}
        try:
            with _Alarm(request.get("timeout")):
                item = value[request["item"]]
                if isinstance(item, np.ndarray) and item.dtype.kind == "f":
                    item = np.asarray(item, dtype=np.float32)  # all the grader computes in
                if isinstance(item, np.ndarray) and item.nbytes > FETCH_ITEM_BYTES:
                    return {"ok": False, "kind": "too_large",
                            "error": f"an array of {item.nbytes >> 20} MB, too large to read back"}
                return {"ok": True, "value": _plain(item)}
        except CallTimeout:
            return {"ok": False, "kind": "timeout", "error": "time limit reached"}
        except BaseException as exc:  # noqa: BLE001
            return {"ok": False, "kind": "exception", "error": _describe(exc)}

    def op_calls(self, request: dict[str, Any]) -> dict[str, Any]:
        """The grader's calls (``call`` requests, and ``step``s), one after the other, as if
        each were its own request: one message for many small calls of a loop the grader
        runs (the MNIST diagnostic's batches), where a round trip would cost more than the
        call. It stops at the first that fails, and says which."""
        guards: set[str] = set()  # (the global generators were seeded once for the request:
        for index, call in enumerate(request["calls"]):  # the same calls, the same draws)
            if call.get("op") == "step":
                answer = self.op_step(call)
            else:
                answer = self.op_call({**call, "reply": "none"})
            if not answer.get("ok"):
                return {**answer, "at": index}
            guards.update(answer.get("guards", ()))
        return {"ok": True, "guards": sorted(guards)}

    def op_put(self, request: dict[str, Any]) -> dict[str, Any]:
        """Keep values the grader sends (the fixed network's starting weights)."""
        self.stored.update({name: np.array(v) for name, v in request["values"].items()})
        return {"ok": True}

    def op_step(self, request: dict[str, Any]) -> dict[str, Any]:
        """One step of plain SGD on kept weights, with the gradients the student's backward
        returned (kept under ``grads``: they never cross the channel). This process is the
        student's, so the grader trusts nothing of it: it reads the weights back at the end
        and measures the network they make itself."""
        rate = float(request["rate"])
        for name, ref in request["pairs"]:
            weight = self.stored[name]
            grad = np.asarray(self._resolve(ref), dtype=np.float64)
            if grad.shape != weight.shape:
                return {"ok": False, "kind": "exception",
                        "error": f"the gradient for {name} has shape {grad.shape}, but "
                                 f"{name} has shape {weight.shape}"}
            self.stored[name] = weight - rate * grad
        return {"ok": True}

    def op_guards(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002
        return {"ok": True, "used": sorted(set(self.guard_log))}


def _map_npy(fd: int) -> np.ndarray:
    """A read-only memory map of the ``.npy`` file open at ``fd`` (``np.load`` maps only files
    it opens by name, and the sandbox may not be able to open them)."""
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        return np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                         order="F" if fortran else "C")


def _syntax_error(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"the cell could not be parsed ({_describe(exc, 200)})"


def _is_definition(node: ast.stmt) -> bool:
    """Statements that only define names: imports, functions, classes and plain aliases
    (``relu = relu_forward``). They still run after a cell has failed or timed out."""
    if isinstance(node, ast.Assign):
        return isinstance(node.value, ast.Name) and all(
            isinstance(target, ast.Name) for target in node.targets)
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef))


def _plain(value: Any, reply: Any = "value") -> Any:
    """Reduce a student's return value to what the wire accepts: arrays, numbers, lists."""
    if reply == "none":
        return None
    if isinstance(reply, list):  # only some positions of a tuple go back
        if not isinstance(value, (tuple, list)):
            return {"__not_tuple__": type(value).__name__}
        return [_plain(value[i]) if i < len(value) else None for i in reply]
    if isinstance(value, np.ndarray):
        if value.nbytes > MAX_SEND_BYTES:
            return {"__unsendable__": f"array of {value.size} elements (too large to send back)"}
        base = np.array(value, copy=True, subok=False)  # drops subclasses and their tricks
        if base.dtype.kind not in wire.ALLOWED_KINDS:
            try:
                base = base.astype(np.float64)
            except (TypeError, ValueError):
                return {"__unsendable__": f"array of dtype {value.dtype}"}
        return base
    if isinstance(value, (np.generic, bool, int, float)) or value is None:
        return np.asarray(value)
    if isinstance(value, (tuple, list)):
        return {"__sequence__": [_plain(v) for v in value], "type": type(value).__name__}
    try:
        return {"__unsendable__": type(value).__name__}
    except Exception:  # noqa: BLE001
        return {"__unsendable__": "object"}


FORBIDDEN_MODULES = ("torch", "jax", "jaxlib", "autograd", "tensorflow", "keras", "sklearn",
                     "scipy.signal", "scipy.ndimage", "cv2", "skimage")
# Functions guarded by identity: module -> (attribute, name reported). Each is caught however it
# is reached (``numpy._core.numeric.correlate``, ``from numpy import correlate as c``, a
# reference kept in a list...). Modules not imported yet are guarded when they are imported.
GUARDED_FUNCTIONS = {
    "numpy": (("convolve", "numpy.convolve"), ("correlate", "numpy.correlate")),
    # the C kernels behind them, callable directly as numpy._core.multiarray.correlate2
    "numpy._core.multiarray": (("correlate", "numpy.correlate"), ("correlate2", "numpy.correlate")),
    "scipy.signal": tuple((n, f"scipy.signal.{n}") for n in (
        "convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve", "oaconvolve")),
    "scipy.ndimage": tuple((n, f"scipy.ndimage.{n}") for n in (
        "convolve", "correlate", "convolve1d", "correlate1d")),
}


def _install_guards(runtime: Runtime) -> None:
    """Record uses of library shortcuts the practical forbids. The grader's static scan catches
    the spellings it can read; this catches the others (``getattr(np, 'conv' + 'olve')``,
    private modules, ``__import__``...) at the moment they are used."""
    guard = _Guard(runtime.guard_log)
    for module in GUARDED_FUNCTIONS:
        if module in sys.modules:
            guard.module(sys.modules[module])
    sys.meta_path.insert(0, _ImportWatch(runtime.guard_log, guard))


class _Guard:
    """Makes the guarded functions log each outermost call (np.convolve runs numpy's correlate
    kernel: one use, not two)."""

    def __init__(self, log: list[str]):
        self.log = log
        self.depth = 0

    def module(self, module: Any) -> None:
        for attribute, label in GUARDED_FUNCTIONS.get(getattr(module, "__name__", ""), ()):
            function = getattr(module, attribute, None)
            function = getattr(function, "_implementation", function)  # numpy's dispatchers
            if isinstance(function, types.FunctionType):
                self._rewrite(function, label)
            elif callable(function):
                self._rebind(function, self._wrapper(function, label))

    def _call(self, label: str, function: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        if self.depth == 0:
            self.log.append(label)
        self.depth += 1
        try:
            return function(*args, **kwargs)
        finally:
            self.depth -= 1

    def _wrapper(self, function: Any, label: str) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._call(label, function, args, kwargs)

        guarded.__name__ = guarded.__qualname__ = getattr(function, "__name__", "guarded")
        guarded.__doc__ = getattr(function, "__doc__", None)
        return guarded

    def _rewrite(self, function: types.FunctionType, label: str) -> None:
        """Give the function object itself new code, so that every reference to it (an alias
        in any module, a default argument, numpy's dispatcher) runs the guard."""
        original = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                                      function.__defaults__, function.__closure__)
        original.__kwdefaults__ = function.__kwdefaults__
        hook = functools.partial(self._call, label, original)
        if function.__closure__:  # new code must keep the closure's shape: wrap it instead
            self._rebind(function, self._wrapper(original, label))
            return
        function.__code__ = _forward.__code__
        function.__defaults__ = None
        function.__kwdefaults__ = {"_grader_guard": hook}

    @staticmethod
    def _rebind(function: Any, replacement: Any) -> None:
        """Replace a function that cannot be rewritten (C functions) in every loaded module."""
        for namespace, name in _holders(function):
            if namespace.get(name) is function:
                namespace[name] = replacement


# Where the loaded modules hold each guarded C function, found by ``find_guard_holders`` in
# the zygote before it forks any child, with how many modules were loaded then.
_HOLDERS: dict[int, list[tuple[dict[str, Any], str]]] = {}
_HOLDERS_FOR = [-1]


def find_guard_holders() -> None:
    """Run once by the zygote: where every loaded module holds a guarded C function.

    Finding them means reading every value of every loaded module's namespace, and reading a
    value writes its reference count: in a child forked from the zygote that copied about
    1,400 pages, 4 of the 11 ms a child took to start. Read once here, the pages stay shared.
    A child whose modules are not the ones counted here looks for itself, as before."""
    functions = {id(f): f for f in _guarded_c_functions()}
    _HOLDERS.clear()
    _HOLDERS.update({key: [] for key in functions})
    for namespace, name, value in _module_values():
        if id(value) in functions and value is functions[id(value)]:
            _HOLDERS[id(value)].append((namespace, name))
    _HOLDERS_FOR[0] = len(sys.modules)


def _guarded_c_functions() -> list[Any]:
    found = []
    for module_name, pairs in GUARDED_FUNCTIONS.items():
        module = sys.modules.get(module_name)
        for attribute, _ in pairs if module is not None else ():
            function = getattr(module, attribute, None)
            function = getattr(function, "_implementation", function)
            if callable(function) and not isinstance(function, types.FunctionType):
                found.append(function)
    return found


def _holders(function: Any) -> list[tuple[dict[str, Any], str]]:
    if _HOLDERS_FOR[0] == len(sys.modules) and id(function) in _HOLDERS:
        return _HOLDERS[id(function)]
    return [(namespace, name) for namespace, name, value in _module_values()
            if value is function]


def _module_values() -> Iterator[tuple[dict[str, Any], str, Any]]:
    """Every (namespace, name, value) of the loaded modules (each namespace read at once,
    so that one changing meanwhile is no error)."""
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            for name, value in list(namespace.items()):
                yield namespace, name, value


def _forward(*args: Any, _grader_guard: Callable[[tuple[Any, ...], dict[str, Any]], Any],
             **kwargs: Any) -> Any:
    """The code a guarded Python function runs instead of its own (see ``_Guard._rewrite``)."""
    return _grader_guard(args, kwargs)


class _ImportWatch(importlib.abc.MetaPathFinder):
    """Logs imports of forbidden modules, and guards ``GUARDED_FUNCTIONS`` of a module the moment
    it has been imported (before the importer can take a reference)."""

    busy: set[str]  # the modules it is finding a spec for itself (not to find them twice)

    def __init__(self, log: list[str], guard: _Guard):
        self.log, self.guard, self.busy = log, guard, set()

    def find_spec(self, fullname: str, path: Sequence[str] | None,  # noqa: ARG002
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == m or fullname.startswith(m + ".") for m in FORBIDDEN_MODULES):
            self.log.append(fullname)
        if fullname not in GUARDED_FUNCTIONS or fullname in self.busy:
            return None  # let the normal machinery import it (or fail to)
        self.busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:  # noqa: BLE001 - its import fails again, as it would have anyway
            return None
        finally:
            self.busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _GuardingLoader(spec.loader, self.guard)
        return spec


class _GuardingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, guard: _Guard):
        self.inner, self.guard = inner, guard

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = self.inner
        self.inner.exec_module(module)
        self.guard.module(module)

    # get_source, is_package... as the real loader has them
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _serve(runtime: Runtime, request_fd: int, response_fd: int, *, reap: bool) -> None:
    reader = io.BufferedReader(os.fdopen(request_fd, "rb", buffering=0), buffer_size=1 << 20)
    responses = os.fdopen(response_fd, "wb", buffering=0)
    handlers = {
        "exec": runtime.op_exec,
        "call": runtime.op_call,
        "fetch": runtime.op_fetch,
        "calls": runtime.op_calls,
        "put": runtime.op_put,
        "step": runtime.op_step,
        "guards": runtime.op_guards,
    }
    server = os.getpid()
    _seed_globals()  # before the first cell
    while True:
        line = reader.readline()
        if not line:
            return
        number, request = wire.unframe(line.rstrip(b"\n"))
        if request.get("op") == "bye":
            return
        signal.signal(signal.SIGALRM, _on_alarm)  # whatever an earlier cell made of it
        if request.get("op") != "exec":  # (cells go on with the seed a student's cell set)
            _seed_globals()
        response = _handle(handlers, request)
        if os.getpid() != server:
            os._exit(0)  # a child that student code forked got back here: it must not answer
        strays = reap_strays() if reap else 0
        if strays:
            response["strays"] = strays
        _flush_student_output()
        responses.write(_encode(response, number, wire.reply_limit(request.get("op"), len(line))))


def _seed_globals() -> None:
    """The global generators start from the same state before the cells and before each call,
    so that grading a notebook twice gives the same results, even for a student who forgot a
    seed (``np.random.default_rng()`` without a seed stays the student's own business)."""
    try:
        np.random.seed(0)
        random.seed(0)
    except BaseException:  # noqa: BLE001, S110 - student code replaced them: its own loss
        pass


def _handle(handlers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
            request: dict[str, Any]) -> dict[str, Any]:
    """One request's response; nothing student code raises may end the server."""
    try:
        return handlers[request["op"]](request)
    except CallTimeout:
        return {"ok": False, "kind": "timeout", "error": "time limit reached"}
    except BaseException as exc:  # noqa: BLE001 - e.g. a broken value student code left behind
        return {"ok": False, "kind": "exception", "error": _describe(exc)}


def _encode(response: dict[str, Any], number: int, limit: int) -> bytes:
    """The answer's line; a short error instead of one the grader would refuse (too long, too
    many values, nested too deeply), so that an honest answer never breaks the protocol."""
    try:
        line = wire.frame(number, response)
        if len(line) > limit + wire.HEADER_BYTES:
            raise wire.WireError(f"the answer is {len(line)} bytes long, more than the {limit} "
                                 f"the grader accepts for this request")
        wire.check_structure(line)
        return line
    except BaseException as exc:  # noqa: BLE001 - an unsendable value is an answer too
        try:
            error = {"ok": False, "kind": "unsendable", "error": _describe(exc)}
            return wire.frame(number, error)
        except BaseException:  # noqa: BLE001 - out of memory: the smallest possible answer
            return b'%d {"ok":false,"kind":"unsendable","error":"no memory left"}\n' % number


def _flush_student_output() -> None:
    """What the student printed goes out before the answer (they may have closed the streams)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110
            pass


def main(argv: list[str]) -> None:
    import json

    from .limits import apply_limits

    config = json.loads(argv[0])
    signal.signal(signal.SIGALRM, _on_alarm)
    applied = apply_limits(config)
    runtime = Runtime(config.get("data") or {})
    _install_guards(runtime)
    request_fd, response_fd = config["fds"]
    os.write(response_fd, wire.frame(0, {"ok": True, "ready": True, "applied": applied}))
    _serve(runtime, request_fd, response_fd, reap=bool(config.get("reap")))
    sys.stdout.flush()
    os._exit(0)
