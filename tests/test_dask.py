"""Grading on a Dask cluster: the same results as grading locally, and a clear error, quickly,
when the scheduler cannot be reached.

The cluster (a ``LocalCluster``: a scheduler and two worker processes) runs in a helper process
of its own, as a real cluster would: started in the test process it would leave threads and
multiprocessing's resource tracker behind, which later tests count as leftovers (and with which
later local pools could not fork).
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import cli
from grader.checks import rubric
from grader.core.errors import GraderError
from grader.course.batch import grade_all
from grader.run.layers import SandboxConfig
from tests.conftest import build_notebook

pytest.importorskip("distributed")

ASSIGNMENT = "convolution"  # no MNIST: quick
TIMING_FIELDS = ("duration_s", "timings")
FLIPPED_CONV1D = """
    def conv1d(x, w, stride=1):
        x, w = np.asarray(x, float), np.asarray(w, float)[::-1]
        n = (len(x) - len(w)) // stride + 1
        return np.array([x[i * stride:i * stride + len(w)] @ w for i in range(n)])
    """


CLUSTER = """
import sys
from distributed import LocalCluster

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                  dashboard_address=None) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes it
"""


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """The address of a local Dask cluster with two single-threaded worker processes."""
    log = tmp_path / "cluster.log"
    with open(log, "w") as errors:
        helper = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        ready, _, _ = select.select([helper.stdout], [], [], 90)
        address = helper.stdout.readline().strip() if ready else ""
        if not address.startswith("tcp://"):
            pytest.fail(f"the Dask cluster did not start:\n{log.read_text()[-3000:]}")
        yield address
    finally:
        helper.stdin.close()
        try:
            helper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    build_notebook(folder, ASSIGNMENT, name="reference")
    build_notebook(folder, ASSIGNMENT, name="template", template=True)
    build_notebook(folder, ASSIGNMENT, name="flipped", replace={"conv1d": FLIPPED_CONV1D})
    (folder / "unreadable.ipynb").write_text("{ this is not a notebook")
    return folder


def documents(out_dir: Path) -> dict[str, dict]:
    """Each result's JSON document without the fields that measure time."""
    found = {}
    for path in sorted(out_dir.glob("*.json")):
        data = json.loads(path.read_text())
        for name in TIMING_FIELDS:
            data.pop(name)
        found[path.name] = data
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dask_cluster_grades_like_local_workers(class_folder: Path, tmp_path: Path,
                                                scheduler: str) -> None:
    loaded = rubric.load(ASSIGNMENT)
    config = SandboxConfig.from_env()
    local = grade_all([class_folder], loaded, tmp_path / "local", sandbox=config, jobs=1,
                      progress=False)
    remote = grade_all([class_folder], loaded, tmp_path / "dask", sandbox=config,
                       dask_address=scheduler, progress=False)

    assert (local.graded, remote.graded) == (4, 4)
    expected, got = documents(tmp_path / "local"), documents(tmp_path / "dask")
    assert len(expected) == 4
    assert got == expected
    scores = {d["student"]: d["score"] for d in got.values()}
    assert scores["reference"] == loaded.max_score
    assert scores["template"] == scores["unreadable"] == 0
    assert 0 < scores["flipped"] < loaded.max_score
    assert got["unreadable.json"]["error"]
    local_csv = (tmp_path / "local" / "grades.csv").read_text()
    assert (tmp_path / "dask" / "grades.csv").read_text() == local_csv


def test_unreachable_scheduler_is_an_instructor_error(class_folder: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(GraderError, match="cannot reach the Dask scheduler"):
        grade_all([class_folder], rubric.load(ASSIGNMENT), tmp_path / "out",
                  sandbox=SandboxConfig.from_env(), dask_address=address, progress=False)
    assert time.monotonic() - began < 10


def test_unreachable_scheduler_exits_2(class_folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    status = cli.main(["grade", "--assignment", ASSIGNMENT, "--out", str(tmp_path / "out"),
                       "--dask", address, "--quiet", str(class_folder)])
    assert status == cli.EXIT_INSTRUCTOR_ERROR == 2
    assert time.monotonic() - began < 10
    message = capsys.readouterr().err
    assert message.startswith("grader: error: cannot reach the Dask scheduler at " + address)
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_server_worker_on_the_cluster_grades_as_locally(tmp_path: Path, scheduler: str) -> None:
    """The course server's ``--dask``: a worker hands each attempt to the cluster
    (``batch.grade_encoded``, as ``grader grade --dask`` does) and stores the same result as
    one grading locally."""
    from grader.serve import engine
    from grader.serve.db import Database
    from grader.serve.store import Store
    from grader.serve.worker import Worker
    from tests.servekit import database_url

    examples = sorted((Path(__file__).resolve().parent.parent / "submissions"
                       / "convolution").glob("[ef]*.ipynb"))[:2]
    results = {}
    for where, dask in (("local", None), ("cluster", scheduler)):
        (tmp_path / where).mkdir()
        store = Store(Database(database_url(tmp_path / where)))
        for number, path in enumerate(examples):
            store.put_upload(f"s{number}", "convolution", path.name, path.read_bytes())
        worker = Worker(store, {"convolution": engine.prepare("convolution", validate=False)},
                        name=where, lease=60, dask=dask)
        assert worker.run(until_empty=True) == len(examples)
        results[where] = sorted(
            (json.loads(body)["sha256"], [(t["name"], t["score"], t["message"])
                                          for t in json.loads(body)["tests"]])
            for _, body in store.results_of("convolution"))
    assert results["cluster"] == results["local"]
    assert len(results["local"]) == len(examples)
