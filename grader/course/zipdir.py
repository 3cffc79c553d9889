"""A zip archive's central directory, read before :mod:`zipfile` reads it whole.

``zipfile.ZipFile()`` loads every member's entry (a 20,000-member cap checked afterwards
comes too late for an archive that claims millions), and it raises for the whole archive when
one member's name is flagged UTF-8 but is not. Here the end-of-central-directory record gives
the member count first (:func:`directory`), and :func:`open_zip` opens an archive with such
names by showing zipfile their flag cleared (the name then reads as CP437, zip's historical
encoding), returning those names so that the caller refuses just those members.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

END = struct.Struct("<4s4H2LH")  # end of central directory record
END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
LOCATOR64 = struct.Struct("<4sLQL")  # zip64 end of central directory locator (20 bytes)
ENTRY = struct.Struct("<4s6H3L5H2L")  # central directory file header
UTF8_FLAG = 0x800
MAX_COMMENT = 0xFFFF


@dataclass(frozen=True)
class Directory:
    members: int  # as the archive's end record says
    start: int  # where the central directory begins in the file
    size: int


def directory(fp: BinaryIO) -> Directory:
    """The archive's member count and central directory's place; ValueError if there is no
    end record (not a zip archive, or a truncated one)."""
    fp.seek(0, os.SEEK_END)
    length = fp.tell()
    tail_start = max(0, length - END.size - MAX_COMMENT)
    fp.seek(tail_start)
    tail = fp.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + END.size > len(tail):
        raise ValueError("no end of central directory record (not a zip archive, or cut short)")
    _, _, _, _, members, size, _, _ = END.unpack_from(tail, at)
    end = tail_start + at
    locator = at - LOCATOR64.size
    if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        # the zip64 record lies just before its locator (where zipfile looks for it too)
        where = tail_start + locator - END64.size
        fp.seek(max(where, 0))
        record = fp.read(END64.size)
        if where >= 0 and len(record) == END64.size and record[:4] == b"PK\x06\x06":
            *_, members, size, _ = END64.unpack(record)
            end = where
    if size > end:
        raise ValueError("the central directory's size is larger than the archive")
    return Directory(members=members, start=end - size, size=size)


def open_zip(path: Path) -> tuple[zipfile.ZipFile, frozenset[str]]:
    """``zipfile.ZipFile(path)``, also when some names are flagged UTF-8 but are not: those
    members are listed by name (as zipfile then shows them) for the caller to refuse."""
    try:
        return zipfile.ZipFile(path), frozenset()
    except UnicodeDecodeError:
        pass
    raw = open(path, "rb")  # noqa: SIM115 (the ZipFile owns it from here on)
    try:
        found = directory(raw)
        raw.seek(found.start)
        patches, names = _bad_utf8_names(raw.read(found.size), found.start)
        archive = zipfile.ZipFile(_Patched(raw, patches))
    except BaseException:
        raw.close()
        raise
    return archive, frozenset(names)


def _bad_utf8_names(central: bytes, start: int) -> tuple[dict[int, bytes], list[str]]:
    """For each entry flagged UTF-8 whose name is not: its flags cleared (file offset ->
    new bytes) and its name as zipfile will then decode it."""
    patches: dict[int, bytes] = {}
    names: list[str] = []
    at = 0
    while at + ENTRY.size <= len(central) and central[at:at + 4] == b"PK\x01\x02":
        fields = ENTRY.unpack_from(central, at)
        flags, name_length, extra_length, comment_length = fields[3], *fields[10:13]
        name = central[at + ENTRY.size:at + ENTRY.size + name_length]
        if flags & UTF8_FLAG:
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                patches[start + at + 8] = struct.pack("<H", flags & ~UTF8_FLAG)
                names.append(name.decode("cp437"))
        at += ENTRY.size + name_length + extra_length + comment_length
    return patches, names


class _Patched(io.RawIOBase):
    """A read-only file with a few byte ranges replaced, as zipfile reads it."""

    def __init__(self, raw: BinaryIO, patches: dict[int, bytes]) -> None:
        super().__init__()
        self.raw, self.patches = raw, patches

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    # (narrower than the stub's writable buffer: RawIOBase.read, which zipfile calls, passes these)
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self.raw.tell()
        data = bytearray(self.raw.read(len(buffer)))
        for where, replacement in self.patches.items():
            for i, byte in enumerate(replacement):
                if 0 <= where + i - start < len(data):
                    data[where + i - start] = byte
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()
