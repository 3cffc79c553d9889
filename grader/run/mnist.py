"""MNIST, found or downloaded, verified once, then served from a fast ``.npy`` cache.

Why this module is careful: every score the grader gives depends on the dataset being exactly
MNIST. A truncated download or a wrong file must stop grading with one clear message, never
produce a silently different dataset. So the four original IDX files are parsed with NumPy,
their headers and sizes checked, and the SHA-256 of their *decompressed* bytes compared with
known sums (mirrors wrap the same content in different gzip streams, so the ``.gz`` bytes
themselves cannot be pinned).

Where the files come from, in order:

1. ``data_dir``, else ``$MNIST_DIR`` (possibly read-only, as in CI; nothing is ever written there);
2. the per-user cache ``${XDG_CACHE_HOME:-~/.cache}/backprop-grader/mnist``;
3. a download from public mirrors, tried in turn, into that cache (atomically).

Parsing and hashing 55 MB of gzip takes about a second, so after the first successful
verification the arrays are kept as ``.npy`` files in the cache and later loads memory-map
them. That fast form lives in a folder named after the expected checksums and counts, so a
different dataset can never be served from a stale cache. Its layout::

    <cache>/npy-<key>/sandbox/train_images.npy   float32 (60000, 784) in [0, 1]
    <cache>/npy-<key>/sandbox/train_labels.npy   uint8   (60000,)
    <cache>/npy-<key>/sandbox/test_images.npy    float32 (10000, 784) in [0, 1]
    <cache>/npy-<key>/uint8/{train,test}_{images,labels}.npy   what ``load`` returns

``sandbox/`` is what the grader copies into sealed memory for the students' sandbox
(``grader.run.sealed``); the test labels, which students must never see, live only in ``uint8/``.

Each ``.npy`` gets the SHA-256 of its bytes in ``<cache>/npy-<key>/sha256/`` when it is
written, and each process checks it once before trusting the file: a cache file changed in
place, even to one of the same size (shuffled labels), is rebuilt from the verified IDX files
instead of being served.

To measure a cold load (parse + verify from gzip) against a cached one, call ``prepare`` or
``load`` with a fresh, empty ``cache_dir``, then again with the same one.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import http.client
import json
import math
import os
import struct
import sys
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from tqdm import tqdm

from grader.core import paths
from grader.core.errors import GraderError
from grader.core.files import replacing, write_atomic
from grader.run import sealed

__all__ = [
    "CHECKSUMS",
    "EXPECTED_COUNTS",
    "FILE_NAMES",
    "MIRRORS",
    "Downloader",
    "MnistError",
    "MnistFiles",
    "default_cache_dir",
    "download_url",
    "load",
    "prepare",
]

SPLIT_FILES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
)
"""For each split, its (images, labels) file names, as on every mirror."""

FILE_NAMES: tuple[str, ...] = (*SPLIT_FILES["train"], *SPLIT_FILES["test"])

_IMAGES, _LABELS = "images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"
CHECKSUMS: Mapping[str, str] = MappingProxyType(
    {
        f"train-{_IMAGES}": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        f"train-{_LABELS}": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        f"t10k-{_IMAGES}": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        f"t10k-{_LABELS}": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
)
"""SHA-256 of the *decompressed* IDX bytes of each file."""

EXPECTED_COUNTS: Mapping[str, int] = MappingProxyType({"train": 60000, "test": 10000})

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

Downloader = Callable[[str, Path], None]
"""``downloader(url, dest)`` writes the bytes at ``url`` to the file ``dest`` or raises
``OSError``; injectable so tests can run offline and callers can add auth or proxies."""

ROWS = COLS = 28
PIXELS = ROWS * COLS
_IMAGE_MAGIC = 2051
_LABEL_MAGIC = 2049
_FORMAT_VERSION = 1  # bump when the fast form's layout or contents change
_TIMEOUT_S = 20.0


class MnistError(GraderError):
    """MNIST is missing, unreachable, corrupt or not the expected dataset; the message says
    which file and what is wrong."""


@dataclass(frozen=True)
class MnistFiles:
    """Where the prepared fast form lives.

    ``sandbox_dir`` holds exactly ``train_images.npy`` (float32, (N, 784), in [0, 1]),
    ``train_labels.npy`` (uint8, (N,)) and ``test_images.npy`` (float32, (M, 784)): the only
    files a sandbox may see. ``test_labels`` (uint8, (M,)) is deliberately outside it.
    """

    sandbox_dir: Path
    test_labels: Path

    @property
    def train_images(self) -> Path:
        return self.sandbox_dir / "train_images.npy"

    @property
    def train_labels(self) -> Path:
        return self.sandbox_dir / "train_labels.npy"

    @property
    def test_images(self) -> Path:
        return self.sandbox_dir / "test_images.npy"

    @property
    def labelled_test_images(self) -> Path:
        """The test images in the labels' order (for feedback on misclassified digits)."""
        return self.test_images


@dataclass(frozen=True)
class Disguise:
    """MNIST as one submission's sandbox sees it: every image's pixels in a secret order, the
    digits under secret names, the test images in a secret order too. A dense network does
    not care in which order its pixels come or what its classes are called, so a notebook
    that trains in ``train_mnist`` learns exactly as well; a network trained elsewhere (weights
    pasted into the notebook) meets pixels it never saw and scores like guessing; a lookup
    of the public test images finds none of them. The secrets stay in the grader's process,
    which maps every prediction back before it counts.

    ``pixels[j]``: the original pixel the sandbox's column ``j`` holds; ``names[d]``: the name
    the sandbox gives digit ``d``; ``order[i]``: the original test image at the sandbox's row
    ``i``. ``arrays``: the three arrays a sandbox gets (``grader.run.sealed.Arrays``)."""

    files: MnistFiles
    arrays: sealed.Arrays
    pixels: np.ndarray
    names: np.ndarray
    order: np.ndarray
    seed: int = 0  # what all of it was drawn from (``disguise_seed``)

    # (the paths the culprit search and the feedback read: the originals)
    @property
    def train_images(self) -> Path:
        return self.files.train_images

    @property
    def train_labels(self) -> Path:
        return self.files.train_labels

    @property
    def test_labels(self) -> Path:
        return self.files.test_labels

    @property
    def labelled_test_images(self) -> Path:
        return self.files.labelled_test_images

    def test_images(self) -> np.ndarray:
        """The test images exactly as the sandbox has them (read-only, no copy)."""
        return self.arrays.array("test_images")

    def train_labels_seen(self) -> np.ndarray:
        """The training labels exactly as the sandbox has them (the digits' secret names)."""
        return self.arrays.array("train_labels")

    def digits(self, predicted: np.ndarray) -> np.ndarray:
        """Predictions made in the sandbox (its image order, its names) as true digits in the
        labels' order; a prediction that names no digit stays out of 0-9 (never right)."""
        digit_of = np.argsort(self.names)  # name -> digit
        valid = (predicted >= 0) & (predicted < len(self.names))
        named = np.where(valid, digit_of[np.where(valid, predicted, 0)], -1)
        restored = np.empty_like(named)
        restored[self.order] = named
        return restored


def disguise_seed(secret: str, submission: str) -> int:
    """One submission's disguise: the same notebook gets the same one (the same score every
    time), and no student can compute it (the rubric's secret is the reference's digest)."""
    digest = hmac.new(secret.encode(), f"mnist disguise {submission}".encode(), "sha256")
    return int.from_bytes(digest.digest()[:8], "little")


@contextlib.contextmanager
def disguised(files: MnistFiles, seed: int) -> Iterator[Disguise]:
    """``files`` disguised for one submission (``Disguise``), in sealed memory for as long as
    the block runs. About 0.3 s: the 188 MB of training images are written once, in place."""
    secret = np.random.default_rng(seed)
    pixels = secret.permutation(PIXELS)
    names = _derangement(secret, 10)
    train = np.load(files.train_images, mmap_mode="r")
    test = np.load(files.test_images, mmap_mode="r")
    order = secret.permutation(len(test))
    labels = np.load(files.train_labels, mmap_mode="r")
    fds: dict[str, int] = {}
    try:
        fds["train_images"] = sealed.sealed_npy(
            "train_images", train.shape, np.float32, lambda out: _columns(train, pixels, out))
        fds["train_labels"] = sealed.sealed_npy(
            "train_labels", labels.shape, np.uint8,
            lambda out: np.take(names.astype(np.uint8), labels, out=out))
        fds["test_images"] = sealed.sealed_npy(
            "test_images", test.shape, np.float32,
            lambda out: _columns(test, pixels, out, rows=order))
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    arrays = sealed.Arrays(fds)
    try:
        yield Disguise(files, arrays, pixels, names, order, seed)
    finally:
        arrays.close()


def _derangement(rng: np.random.Generator, count: int) -> np.ndarray:
    """A permutation that moves every element: no digit keeps its name."""
    while True:
        names = rng.permutation(count)
        if not np.any(names == np.arange(count)):
            return names


def _columns(images: np.ndarray, pixels: np.ndarray, out: np.ndarray, *,
             rows: np.ndarray | None = None, block: int = 2048) -> None:
    """``out`` = ``images`` with their pixels in the order ``pixels`` (and their rows in the
    order ``rows``), a block of rows at a time so that each stays in cache."""
    for start in range(0, len(images), block):
        chosen = rows[start:start + block] if rows is not None else slice(start, start + block)
        np.take(np.asarray(images[chosen]), pixels, axis=1, out=out[start:start + block])


def default_cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/backprop-grader/mnist``: per user, so nothing needs root
    and CI's read-only ``MNIST_DIR`` is never written to."""
    return paths.cache_dir("mnist")


def load(
    split: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    downloader: Downloader | None = None,
    checksums: Mapping[str, str] | None = None,
    expected_counts: Mapping[str, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of ``split`` ("train" or "test"): uint8 arrays of shape
    (N, 28, 28) and (N,), verified against the checksums.

    The arrays are read-only memory maps of the cache (copy them to modify): that is what makes
    a second load take milliseconds. ``data_dir`` defaults to ``$MNIST_DIR``, ``cache_dir`` to
    ``default_cache_dir()``; ``download=False`` never touches the network. ``mirrors``,
    ``downloader``, ``checksums`` (file name -> SHA-256 of the decompressed IDX) and
    ``expected_counts`` (split -> N) exist for tests and for other copies of the dataset.
    Raises ``MnistError`` for anything missing or wrong.
    """
    source = _Source.resolve(
        data_dir, cache_dir, download, mirrors, downloader, checksums, expected_counts
    )
    if split not in SPLIT_FILES:
        raise MnistError(f"unknown MNIST split {split!r}: expected 'train' or 'test'")
    if not source.uint8_ready(split):
        paths = source.obtain(SPLIT_FILES[split])
        source.build_uint8(split, paths)
    images_path, labels_path = source.uint8_paths(split)
    return np.load(images_path, mmap_mode="r"), np.load(labels_path, mmap_mode="r")


def prepare(
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    downloader: Downloader | None = None,
    checksums: Mapping[str, str] | None = None,
    expected_counts: Mapping[str, int] | None = None,
    verified: Verified | None = None,
) -> MnistFiles:
    """Make sure the sandbox's float32 files and the held-out test labels exist; return where.

    The first call finds or downloads the four files, verifies them fully and writes the fast
    form (about a second for real MNIST). Later calls with the same cache check that the four
    ``.npy`` files exist with the right header and size, and, once per process, that their
    bytes match the SHA-256 recorded when they were written (0.15 s for real MNIST); anything
    else is rebuilt (``verified``: which files were checked already; this process's by
    default). Options as for ``load``.
    """
    source = _Source.resolve(
        data_dir, cache_dir, download, mirrors, downloader, checksums, expected_counts
    )
    files = MnistFiles(
        sandbox_dir=source.fast_dir / "sandbox",
        test_labels=source.uint8_paths("test")[1],
    )
    n_train, n_test = source.counts["train"], source.counts["test"]
    wanted = [
        (files.train_images, (n_train, PIXELS), np.float32),
        (files.train_labels, (n_train,), np.uint8),
        (files.test_images, (n_test, PIXELS), np.float32),
        (files.test_labels, (n_test,), np.uint8),
    ]
    if all(_npy_ok(path, shape, dtype, verified) for path, shape, dtype in wanted):
        return files

    # Locate (or download) every missing file before the slow parsing, so that an offline
    # machine fails at once with one message that lists everything.
    todo = [split for split in ("train", "test") if not source.uint8_ready(split)]
    paths = source.obtain([name for split in todo for name in SPLIT_FILES[split]])
    for split in todo:
        source.build_uint8(split, paths)

    train_images, train_labels = (np.load(p, mmap_mode="r") for p in source.uint8_paths("train"))
    test_images = np.load(source.uint8_paths("test")[0], mmap_mode="r")
    _save_npy(files.train_images, _as_float(train_images))
    _save_npy(files.train_labels, np.asarray(train_labels))
    _save_npy(files.test_images, _as_float(test_images))
    return files


def download_url(url: str, dest: Path, *, timeout: float = _TIMEOUT_S) -> None:
    """The default downloader: fetch ``url`` into ``dest`` with a progress bar on stderr.

    Raises ``OSError`` (``urllib.error.URLError`` included) or ``http.client.HTTPException``
    when the transfer fails or ends short; the caller then tries the next mirror.
    """
    from grader import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"backprop-grader/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        received = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=url.rsplit("/", 1)[-1],
            file=sys.stderr,
            leave=False,
        ) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed after {received} of {total} bytes")


# --- internals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Resolved options: where to look, where to cache, what to expect."""

    data_dir: Path | None
    data_dir_origin: str  # "data_dir" or "MNIST_DIR", for messages
    cache_dir: Path
    download: bool
    mirrors: tuple[str, ...]
    downloader: Downloader
    checksums: Mapping[str, str]
    counts: Mapping[str, int]

    @classmethod
    def resolve(
        cls,
        data_dir: Path | None,
        cache_dir: Path | None,
        download: bool,
        mirrors: Sequence[str] | None,
        downloader: Downloader | None,
        checksums: Mapping[str, str] | None,
        expected_counts: Mapping[str, int] | None,
    ) -> _Source:
        origin = "data_dir"
        if data_dir is None:
            origin = "MNIST_DIR"
            env = os.environ.get("MNIST_DIR", "")
            data_dir = Path(env) if env else None
        sums = dict(CHECKSUMS if checksums is None else checksums)
        counts = dict(EXPECTED_COUNTS if expected_counts is None else expected_counts)
        missing = [name for name in FILE_NAMES if name not in sums]
        if missing:
            raise MnistError(f"no checksum given for {', '.join(missing)}")
        if set(counts) != set(SPLIT_FILES):
            raise MnistError(f"expected_counts must give 'train' and 'test', not {sorted(counts)}")
        return cls(
            data_dir=Path(data_dir).expanduser() if data_dir is not None else None,
            data_dir_origin=origin,
            cache_dir=Path(cache_dir).expanduser()
            if cache_dir is not None
            else default_cache_dir(),
            download=download,
            mirrors=tuple(MIRRORS if mirrors is None else mirrors),
            downloader=download_url if downloader is None else downloader,
            checksums={name: sums[name].lower() for name in FILE_NAMES},
            counts=counts,
        )

    @property
    def fast_dir(self) -> Path:
        """The fast form's folder, named after everything it was verified against."""
        identity = json.dumps(
            {"format": _FORMAT_VERSION, "checksums": self.checksums, "counts": self.counts},
            sort_keys=True,
        )
        return self.cache_dir / f"npy-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"

    def uint8_paths(self, split: str) -> tuple[Path, Path]:
        folder = self.fast_dir / "uint8"
        return folder / f"{split}_images.npy", folder / f"{split}_labels.npy"

    def uint8_ready(self, split: str) -> bool:
        n = self.counts[split]
        images, labels = self.uint8_paths(split)
        return _npy_ok(images, (n, ROWS, COLS), np.uint8) and _npy_ok(labels, (n,), np.uint8)

    def obtain(self, names: Sequence[str]) -> dict[str, Path]:
        """Find each file in the data folder or the cache, else download it; raise one
        ``MnistError`` naming ``MNIST_DIR`` and the four files when any stays missing."""
        found: dict[str, Path] = {}
        missing: list[str] = []
        for name in names:
            path = self._locate(name)
            if path is None:
                missing.append(name)
            else:
                found[name] = path
        failures: list[str] = []
        if missing and self.download:
            for name in list(missing):
                path, errors = self._download(name)
                if path is None:
                    failures.append(f"{name}: " + "; ".join(errors))
                    break  # every mirror failed: the others would most likely fail the same way
                found[name] = path
                missing.remove(name)
        if missing:
            raise MnistError(self._not_found_message(missing, failures))
        return found

    def build_uint8(self, split: str, paths: Mapping[str, Path]) -> None:
        """Parse and fully verify one split, then write its uint8 fast form."""
        images, labels = _verify_split(split, paths, self.checksums, self.counts[split])
        images_path, labels_path = self.uint8_paths(split)
        _save_npy(images_path, images)
        _save_npy(labels_path, labels)

    def _locate(self, name: str) -> Path | None:
        candidates: list[Path] = []
        if self.data_dir is not None:
            # Some copies of MNIST ship the IDX files already decompressed.
            candidates += [self.data_dir / name, self.data_dir / name.removesuffix(".gz")]
        candidates.append(self.cache_dir / name)
        return next((path for path in candidates if path.is_file()), None)

    def _download(self, name: str) -> tuple[Path | None, list[str]]:
        """Try each mirror; keep the first copy whose decompressed bytes have the right
        checksum. The cache only ever sees the finished file (``replacing``)."""
        target = self.cache_dir / name
        errors: list[str] = []
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cache_error(self.cache_dir, exc) from exc
        for mirror in self.mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                with replacing(target, suffix=".part") as temporary:
                    self.downloader(url, temporary)
                    digest = hashlib.sha256(_decompress(temporary, url)).hexdigest()
                    if digest != self.checksums[name]:
                        raise MnistError(
                            f"{url}: wrong checksum (SHA-256 of the decompressed IDX is "
                            f"{digest}, expected {self.checksums[name]})"
                        )
                return target, errors
            except MnistError as exc:
                errors.append(str(exc))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                errors.append(f"{url}: {exc}")
        if not self.mirrors:
            errors.append("no mirrors configured")
        return None, errors

    def _not_found_message(self, missing: list[str], failures: list[str]) -> str:
        if self.data_dir is None:
            data = "MNIST_DIR (not set)"
        elif self.data_dir.is_dir():
            data = f"{self.data_dir_origin}={self.data_dir}"
        else:
            data = f"{self.data_dir_origin}={self.data_dir} (no such folder)"
        if not self.download:
            how = "disabled"
        elif failures:
            how = "failed: " + " | ".join(failures)
        else:
            how = "not attempted"
        return (
            f"MNIST not found (missing {', '.join(missing)}). Set MNIST_DIR to a folder holding "
            f"the four files {', '.join(FILE_NAMES)}. Looked in: {data}; the cache "
            f"{self.cache_dir}. Download: {how}."
        )


def _verify_split(
    split: str, paths: Mapping[str, Path], checksums: Mapping[str, str], expected: int
) -> tuple[np.ndarray, np.ndarray]:
    """Structure first (the more helpful message), then counts, then checksums."""
    images_name, labels_name = SPLIT_FILES[split]
    images_path, labels_path = paths[images_name], paths[labels_name]
    images_where = f"{images_name} ({images_path})"
    labels_where = f"{labels_name} ({labels_path})"
    images_data = _decompress(images_path, images_where)
    images = _parse_images(images_data, images_where)
    labels_data = _decompress(labels_path, labels_where)
    labels = _parse_labels(labels_data, labels_where)
    if len(images) != len(labels):
        raise MnistError(
            f"{images_where} has {len(images)} images but {labels_where} has "
            f"{len(labels)} labels: image and label counts must agree"
        )
    if len(images) != expected:
        raise MnistError(
            f"wrong count: {images_where} and {labels_where} hold {len(images)} examples, "
            f"expected {expected} for the {split} split"
        )
    for where, name, data in (
        (images_where, images_name, images_data),
        (labels_where, labels_name, labels_data),
    ):
        digest = hashlib.sha256(data).hexdigest()
        if digest != checksums[name]:
            raise MnistError(
                f"{where}: wrong checksum: SHA-256 of the decompressed IDX bytes is {digest}, "
                f"expected {checksums[name]}; the file is corrupt or not the original MNIST"
            )
    return images, labels


def _decompress(path: Path, where: str) -> bytes:
    """The IDX bytes of a file, gunzipped when it is gzip (detected by content, not name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MnistError(f"{where}: cannot read: {exc}") from exc
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise MnistError(
            f"{where}: truncated: the gzip stream ends early ({len(raw)} bytes; "
            f"an interrupted download?)"
        ) from exc
    except (OSError, zlib.error) as exc:
        raise MnistError(f"{where}: corrupt gzip data ({exc})") from exc


def _parse_images(data: bytes, where: str) -> np.ndarray:
    if len(data) < 16:
        raise MnistError(
            f"{where}: truncated: {len(data)} bytes, less than an IDX image header (16 bytes)"
        )
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != _IMAGE_MAGIC:
        hint = " (that is a label file's)" if magic == _LABEL_MAGIC else ""
        raise MnistError(
            f"{where}: bad magic number {magic}{hint}, expected {_IMAGE_MAGIC} for IDX images"
        )
    if (rows, cols) != (ROWS, COLS):
        raise MnistError(f"{where}: wrong image size {rows}×{cols}, expected {ROWS}×{COLS}")
    _check_length(data, 16 + n * rows * cols, f"{n} images of {rows}×{cols}", where)
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def _parse_labels(data: bytes, where: str) -> np.ndarray:
    if len(data) < 8:
        raise MnistError(
            f"{where}: truncated: {len(data)} bytes, less than an IDX label header (8 bytes)"
        )
    magic, n = struct.unpack(">II", data[:8])
    if magic != _LABEL_MAGIC:
        hint = " (that is an image file's)" if magic == _IMAGE_MAGIC else ""
        raise MnistError(
            f"{where}: bad magic number {magic}{hint}, expected {_LABEL_MAGIC} for IDX labels"
        )
    _check_length(data, 8 + n, f"{n} labels", where)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if n and labels.max() > 9:
        raise MnistError(f"{where}: label {int(labels.max())} out of range, expected 0–9")
    return labels


def _check_length(data: bytes, expected: int, what: str, where: str) -> None:
    if len(data) < expected:
        raise MnistError(
            f"{where}: truncated: the header announces {what} ({expected} bytes) "
            f"but the decompressed file has {len(data)} bytes"
        )
    if len(data) > expected:
        raise MnistError(
            f"{where}: {len(data) - expected} unexpected bytes after the {what} "
            f"the header announces"
        )


def _as_float(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 784) float32 in [0, 1], with a single float32 buffer."""
    flat = images.reshape(len(images), PIXELS).astype(np.float32)
    flat /= np.float32(255)
    return flat


def _npy_ok(path: Path, shape: tuple[int, ...], dtype: type,
            verified: Verified | None = None) -> bool:
    """Whether ``path`` is an ``.npy`` of this shape and dtype whose size matches its header
    (the cheap check that catches a missing, foreign or cut-short cache file) and whose bytes
    are those recorded when it was written (once per process: what catches a changed one)."""
    return _header_ok(path, shape, dtype) and _digest_ok(path, verified or VERIFIED)


def _header_ok(path: Path, shape: tuple[int, ...], dtype: type) -> bool:
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        with open(path, "rb") as handle:
            reader = readers.get(np.lib.format.read_magic(handle))
            if reader is None:
                return False
            got_shape, fortran, got_dtype = reader(handle)
            offset = handle.tell()
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    want = np.dtype(dtype)
    return (
        tuple(got_shape) == shape
        and not fortran
        and got_dtype == want
        and size == offset + math.prod(shape) * want.itemsize
    )


class Verified:
    """The cache files whose SHA-256 was checked, by identity (path, device, inode, size,
    times): each is read in full once, not at every ``prepare``. ``VERIFIED`` is the
    process's; a test can pass its own to ``prepare``."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, int, int, int, int, int]] = set()

    def __contains__(self, path: Path) -> bool:
        try:
            return _file_identity(path, path.stat()) in self._seen
        except OSError:
            return False

    def add(self, path: Path, info: os.stat_result) -> None:
        self._seen.add(_file_identity(path, info))


VERIFIED = Verified()


def _file_identity(path: Path, info: os.stat_result) -> tuple[str, int, int, int, int, int]:
    return (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
            info.st_ctime_ns)


def _digest_path(path: Path) -> Path:
    """Where the SHA-256 of a fast-form file is kept: ``<fast>/sha256/<folder>/<name>``, so
    that ``sandbox/`` holds only the three arrays."""
    return path.parent.parent / "sha256" / path.parent.name / f"{path.name}.sha256"


def _file_sha256(path: Path) -> tuple[str, os.stat_result]:
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        return hashlib.file_digest(handle, "sha256").hexdigest(), info


def _digest_ok(path: Path, verified: Verified) -> bool:
    """Whether ``path`` still holds the bytes whose SHA-256 was recorded when it was written;
    no record (a cache from before the records) counts as a mismatch, so it is rebuilt."""
    try:
        recorded = _digest_path(path).read_text().strip()
    except OSError:
        return False
    if path in verified:
        return True
    try:
        digest, info = _file_sha256(path)
    except OSError:
        return False
    if digest != recorded:
        return False
    verified.add(path, info)
    return True


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` so readers see no file or the whole file, never a partial one, and
    record the SHA-256 of its bytes for ``_digest_ok`` before the file appears under its
    name."""
    try:
        with replacing(path) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
            digest, _ = _file_sha256(temporary)
            write_atomic(_digest_path(path), digest + "\n")
    except OSError as exc:
        raise _cache_error(path.parent, exc) from exc


def _cache_error(folder: Path, exc: OSError) -> MnistError:
    return MnistError(
        f"cannot write the MNIST cache in {folder}: {exc}; pass cache_dir or set "
        f"XDG_CACHE_HOME to a writable folder"
    )
