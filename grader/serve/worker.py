"""A grading worker: takes attempts from the database's queue, grades them, stores results.

The server starts ``--jobs`` of these as processes of their own (``python -m
grader.serve.worker``), each with one warm zygote, as a batch's pool workers have; with
``--dask`` a worker hands its jobs to the Dask cluster instead (the batch's
``grade_encoded``), holding the lease while the cluster grades. Workers talk to nothing but
the database: a worker that dies (the server killed with ``kill -9``: workers die with it)
leaves a lease that runs out, and the next worker to look takes the attempt again. A worker
never holds the server's secret key: it has no use for it, and student code runs below it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from grader import ONE_BLAS_THREAD
from grader.core.errors import GraderError
from grader.core.results import SubmissionResult, encode
from grader.serve import engine
from grader.serve.db import Database
from grader.serve.store import MAX_TRIES, Claimed, Store

if TYPE_CHECKING:  # (Dask is imported only where a worker uses it)
    import distributed

POLL_SECONDS = 0.05  # an idle worker looks at the queue this often (one indexed query)
IDLE_POLL_SECONDS = 0.25  # after a second with nothing to do
BUSY_PAUSE_SECONDS = 10.0  # after a busy machine's timeout, before the attempt is graded again


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.serve.worker")
    parser.add_argument("--database", required=True)
    parser.add_argument("--assignments", required=True, help="comma-separated")
    parser.add_argument("--name", required=True)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--dask", default=None)
    parser.add_argument("--trusted", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    store = Store(Database(args.database))
    prepared = {name: engine.prepare(name, validate=False, trusted=args.trusted)
                for name in args.assignments.split(",") if name}
    if args.dask is None:
        engine.warm(list(prepared.values()))
    print(f"worker {args.name}: ready", file=sys.stderr, flush=True)
    Worker(store, prepared, name=args.name, lease=args.lease, dask=args.dask).run()
    return 0


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive its server (it would keep grading for nobody, holding
    leases); the kernel kills it when the server dies, however the server died."""
    for key, value in ONE_BLAS_THREAD.items():
        os.environ.setdefault(key, value)
    if sys.platform == "linux" and parent:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)  # the server died before prctl


class Worker:
    def __init__(self, store: Store, prepared: dict[str, engine.Prepared], *, name: str,
                 lease: float, dask: str | None = None):
        self.store, self.prepared, self.name, self.lease = store, prepared, name, lease
        self.dask = dask
        self._client: distributed.Client | None = None  # the Dask cluster's, made when first used
        self.stopping = threading.Event()

    def run(self, *, until_empty: bool = False) -> int:
        """Grade until stopped (or, ``until_empty``, until the queue is empty): the count."""
        graded, idle_since = 0, time.monotonic()
        while not self.stopping.is_set():
            claimed = self.store.claim(self.name, self.lease)
            if claimed is None:
                if until_empty:
                    return graded
                idle = time.monotonic() - idle_since > 1
                self.stopping.wait(IDLE_POLL_SECONDS if idle else POLL_SECONDS)
                continue
            self.grade(claimed)
            graded += 1
            idle_since = time.monotonic()
        return graded

    def grade(self, claimed: Claimed) -> bool:
        """Grade one attempt holding its lease; True when its result was stored."""
        attempt = claimed.attempt
        prepared = self.prepared.get(attempt.assignment)
        if prepared is None:
            self.store.give_back(attempt.id, self.name, f"this server does not grade "
                                 f"{attempt.assignment}", final=True)
            return False
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(attempt.id, done), daemon=True)
        keeper.start()
        try:
            result = self._grade(prepared, claimed)
        except (GraderError, OSError, Exception) as exc:  # noqa: BLE001 - the machine's fault
            done.set()
            why = f"{type(exc).__name__}: {exc}"[:500]
            print(f"worker {self.name}: attempt {attempt.id}: {why}\n"
                  f"{traceback.format_exc()[-2000:]}", file=sys.stderr, flush=True)
            self.store.give_back(attempt.id, self.name, why, final=attempt.tries >= MAX_TRIES)
            return False
        finally:
            done.set()
        if result.machine_was_busy and attempt.tries < MAX_TRIES - 1:
            # a timeout the machine may have caused (grader.core.pace): graded again, after a
            # pause for the load to pass; the last try keeps its result, for review
            self.store.retry_later(attempt.id, self.name, "ran out of time while the machine "
                                   "was busy; graded again", after=BUSY_PAUSE_SECONDS)
            return False
        return self.store.finish(attempt.id, self.name, encode(result), result.score,
                                 result.max_score)

    def _grade(self, prepared: engine.Prepared, claimed: Claimed) -> SubmissionResult:
        """The notebook under its own file name (a .py is graded as a one-cell notebook, as
        the batch grades it), in a folder of its own that is gone afterwards."""
        attempt = claimed.attempt
        with tempfile.TemporaryDirectory(prefix="grader-serve-") as folder:
            path = Path(folder) / _safe_filename(attempt.filename)
            path.write_bytes(claimed.data)
            if self.dask:
                return self._grade_on_dask(prepared, path, attempt.student)
            return engine.grade(prepared, path, attempt.student)

    def _grade_on_dask(self, prepared: engine.Prepared, path: Path,
                       student: str) -> SubmissionResult:
        """On the cluster, as ``grader grade --dask`` grades (``batch.grade_encoded``): the
        Dask workers read the file from the same path, so they share this machine's disk."""
        from grader.course.batch import elsewhere, grade_encoded

        if self._client is None:
            from distributed import Client

            try:
                self._client = Client(self.dask, timeout="20s")
            except (OSError, ValueError) as exc:
                raise GraderError(f"cannot reach the Dask scheduler at {self.dask}: "
                                  f"{exc}") from None
        future = self._client.submit(grade_encoded,
                                     elsewhere(engine.job(prepared, path, student)), pure=False)
        return future.result().result()

    def _keep_lease(self, attempt_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease / 4):
            try:
                if not self.store.renew(attempt_id, self.name, self.lease):
                    return
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
                pass


def _safe_filename(name: str) -> str:
    """The student's file name as the batch would have it on disk (never a path)."""
    base = Path(name.replace("\\", "/")).name.strip() or "submission.ipynb"
    base = "".join(c if c.isalnum() or c in "._- " else "_" for c in base)[:120]
    if base.startswith("."):
        base = "_" + base
    if not base.lower().endswith((".ipynb", ".py")):
        base += ".ipynb"
    return base


if __name__ == "__main__":
    sys.exit(main())
