"""Sealed in-memory copies of the files a sandbox may read (the MNIST arrays).

A descriptor of a file on disk lets whoever holds it reach that file: a sandbox running as the
grader's own uid (an ordinary user's user namespace) can ``fchmod`` it and reopen
``/proc/self/fd/N`` for writing, and so rewrite the instructor's cache for every later
submission. So the sandbox never gets one. Each file is copied once per process into a memfd
sealed against any change (``F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL``): no
``write``, ``ftruncate`` or writable shared ``mmap`` can succeed on it, whoever holds it, and the
seals cannot be removed. Each sandbox gets its own read-only descriptor of that memfd (its own
file offset); a pool worker forked after the copy shares its pages.

The copies are kept by a ``SealedCopies`` object, one per process (``COPIES``).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

import numpy as np

__all__ = ["COPIES", "SEALS", "Arrays", "SealedCopies", "forget_all", "open_readonly", "sealed_npy"]

SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_CHUNK = 1 << 24


@dataclass(frozen=True)
class _Copy:
    path: str  # the resolved source path, to notice when it is gone or replaced
    identity: tuple[int, ...]
    fd: int  # the sealed memfd, kept open by this process


class SealedCopies:
    """The sealed copies one process keeps, keyed by the source file's identity (device,
    inode, size, times): a rebuilt cache file gets a fresh copy, and copies of files that are
    gone (a submission's secretly ordered test images) are dropped at the next call. A pool
    worker forked after a copy shares its pages. ``COPIES`` is the process's; a test can make
    its own and throw it away (``forget_all``)."""

    def __init__(self) -> None:
        self._copies: dict[tuple[int, ...], _Copy] = {}
        self._lock = threading.Lock()

    def open_readonly(self, path: Path) -> int:
        """A new read-only descriptor of a sealed in-memory copy of ``path`` (the caller
        closes it). Raises ``OSError`` when ``path`` cannot be read."""
        source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(source)
            identity = _identity(info)
            with self._lock:
                self._drop_stale()
                copy = self._copies.get(identity)
                if copy is None:
                    fd = _sealed_copy(source, info.st_size, Path(path))
                    copy = self._copies[identity] = _Copy(os.path.realpath(path), identity, fd)
        finally:
            os.close(source)
        return _reopen(copy.fd)

    def forget_all(self) -> None:
        """Close every kept copy (tests; a process that is done with the data)."""
        with self._lock:
            for copy in self._copies.values():
                os.close(copy.fd)
            self._copies.clear()

    def _drop_stale(self) -> None:
        """Close the copies whose source file is gone or was replaced since."""
        for identity, copy in list(self._copies.items()):
            try:
                current = _identity(os.stat(copy.path))
            except OSError:
                current = None
            if current != identity:
                os.close(copy.fd)
                del self._copies[identity]


COPIES = SealedCopies()  # this process's


def open_readonly(path: Path) -> int:
    """``COPIES.open_readonly``: a read-only descriptor of a sealed copy of ``path``."""
    return COPIES.open_readonly(path)


def forget_all() -> None:
    """``COPIES.forget_all``."""
    COPIES.forget_all()


def _identity(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _sealed_copy(source: int, size: int, path: Path) -> int:
    """The bytes of ``source`` in a new memfd, sealed: its size must match what fstat said,
    or the file changed while it was read and the copy is refused."""
    fd = os.memfd_create(f"grader-{path.name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        copied = 0
        while True:
            chunk = os.pread(source, _CHUNK, copied)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            copied += len(chunk)
        if copied != size:
            raise OSError(errno.EAGAIN, "the file changed while it was copied", str(path))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        os.fchmod(fd, 0o444)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _reopen(fd: int) -> int:
    """A read-only descriptor of the memfd with a file offset of its own. The mode is set
    again first: a sandbox of the grader's own uid may have changed it."""
    os.fchmod(fd, 0o444)
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no /proc: a duplicate, sealed all the same, sharing the offset
        return os.dup(fd)


# --- arrays made for one submission -----------------------------------------------------------


class Arrays(Mapping[str, int]):
    """Sealed ``.npy`` images made in memory for one submission (its disguised MNIST), by name:
    what a sandbox gets in place of files on disk. The descriptors are this process's; each
    sandbox gets read-only copies of them (``open_copy``), and ``close`` ends them."""

    def __init__(self, fds: Mapping[str, int]):
        self._fds = dict(fds)

    def __getitem__(self, name: str) -> int:
        return self._fds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fds)

    def __len__(self) -> int:
        return len(self._fds)

    def open_copy(self, name: str) -> int:
        """A new read-only descriptor of one array (the caller closes it)."""
        return _reopen(self._fds[name])

    def array(self, name: str) -> np.ndarray:
        """The array itself, read-only, mapped from its sealed memory (no copy)."""
        with open(f"/proc/self/fd/{self._fds[name]}", "rb") as handle:  # (an offset of its own)
            return _mapped(handle)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __reduce__(self) -> NoReturn:  # (descriptors mean nothing in another process)
        raise TypeError("sealed arrays stay in the process that made them")


def sealed_npy(name: str, shape: tuple[int, ...], dtype: np.dtype | type,
               fill: Callable[[np.ndarray], object]) -> int:
    """A new memfd holding an ``.npy`` image of ``shape`` and ``dtype``, whose values ``fill``
    writes into the array it is given (straight into the memfd's pages: no copy on disk or
    in memory), then sealed as ``open_readonly``'s copies are. Returns the descriptor."""
    header = _npy_header(shape, np.dtype(dtype))
    size = len(header) + int(np.prod(shape)) * np.dtype(dtype).itemsize
    fd = os.memfd_create(f"grader-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as memory:
            memory[: len(header)] = header
            view = np.ndarray(shape, dtype, buffer=memory, offset=len(header))
            try:
                fill(view)
            finally:
                del view  # (no writable mapping may outlive the seal)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        os.fchmod(fd, 0o444)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(shape)})
    return buffer.getvalue()


def _mapped(handle: BinaryIO) -> np.ndarray:
    """A read-only map of the ``.npy`` image open in ``handle``."""
    version = np.lib.format.read_magic(handle)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(handle)
    return np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                     order="F" if fortran else "C")
