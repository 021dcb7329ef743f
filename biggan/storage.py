"""One filesystem layer for local paths and shared-storage URIs (`s3://bucket/prefix`, ...).

Built on `pyarrow.fs` because Ray Train persists through it (`RunConfig(storage_filesystem=)`):
runs, shard sets and Ray's own files then share one client, one way of resolving a URI and one
set of credentials. For S3 those come from the environment (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL` for S3-compatible servers) or the
machine's role, never from the URI, so a URI can be printed and stored in `options.json`.

Atomic writes. Locally: a temp file in the same folder, fsync, `os.replace`. On object stores an
object becomes visible only when its upload completes, and `write_bytes` hands pyarrow the whole
payload at once. A large file streamed from disk (`upload`) could be completed half-written if the
upload died between parts (Arrow closes rather than aborts a stream it destroys), so callers that
stream guard the set of files with a manifest written last (checkpoints; shard sets' dataset.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

_CHUNK = 8 << 20  # bytes per read/write when streaming files


def is_uri(text: str | os.PathLike) -> bool:
    """True for `scheme://...` (not for a local path or `file://`)."""
    text = str(text)
    return "://" in text and not text.startswith("file://")


def normalize(text: str | os.PathLike) -> str:
    """A URI unchanged (no trailing slash); a local path made absolute."""
    text = str(text)
    if is_uri(text):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://"):]
    return str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class Location:
    """A file or folder on a local disk or in an object store."""

    fs: pafs.FileSystem  # pyarrow filesystem that holds it
    path: str  # path inside `fs`: absolute for local, "bucket/key" for object stores
    scheme: str  # "" for local, else the URI scheme ("s3", "gs", ...)

    # ----------------------------------------------------------------- naming

    @property
    def uri(self) -> str:
        """What a user types: a local path, or scheme://bucket/key."""
        return self.path if not self.scheme else f"{self.scheme}://{self.path}"

    @property
    def is_local(self) -> bool:
        return not self.scheme

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        head = self.path.rstrip("/").rsplit("/", 1)[0] or "/"
        return Location(self.fs, head, self.scheme)

    def __truediv__(self, part: str) -> Location:
        part = str(part).strip("/")
        return Location(self.fs, f"{self.path.rstrip('/')}/{part}", self.scheme)

    def __str__(self) -> str:
        return self.uri

    def local_path(self) -> Path:
        """The local path; raises for object stores (callers that need a real file download)."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not on a local disk")
        return Path(self.path)

    # ----------------------------------------------------------------- queries

    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def size(self) -> int:
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{self.uri} is not a file")
        return int(info.size)

    def children(self) -> list[Location]:
        """Direct children (files and folders), sorted by name; [] when the folder is missing."""
        return [Location(self.fs, info.path, self.scheme) for info in self._list(recursive=False)]

    def files(self, recursive: bool = True) -> list[tuple[Location, int]]:
        """(file, size) below this folder, sorted by path."""
        return [(Location(self.fs, info.path, self.scheme), int(info.size))
                for info in self._list(recursive) if info.type == pafs.FileType.File]

    def _list(self, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        try:
            infos = self.fs.get_file_info(selector)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(infos, key=lambda info: info.path)

    # ----------------------------------------------------------------- reading

    def read_bytes(self) -> bytes:
        if self.is_local:
            return Path(self.path).read_bytes()
        with self.fs.open_input_stream(self.path) as handle:
            return handle.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def read_json(self) -> Any:
        return json.loads(self.read_bytes())

    def sha256(self) -> str:
        """Hex sha256 of the file's bytes, streamed."""
        digest = hashlib.sha256()
        with self.open_input() as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
        return digest.hexdigest()

    def open_input(self):
        """A readable binary stream (e.g. for tar readers), closed by the caller."""
        if self.is_local:
            return open(self.path, "rb")
        return self.fs.open_input_stream(self.path)

    def download(self, target: Path) -> Path:
        """Copy this file to a local path (streamed)."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            shutil.copyfile(self.path, target)
            return target
        with self.fs.open_input_stream(self.path) as src, open(target, "wb") as dst:
            while block := src.read(_CHUNK):
                dst.write(block)
        return target

    # ----------------------------------------------------------------- writing

    def makedirs(self) -> None:
        """Create the folder locally; object stores have no folders to create."""
        if self.is_local:
            Path(self.path).mkdir(parents=True, exist_ok=True)

    def write_bytes(self, data: bytes) -> None:
        """Replace this file atomically with `data`."""
        if self.is_local:
            _atomic_local_write(Path(self.path), lambda handle: handle.write(data))
            return
        with self.fs.open_output_stream(self.path) as handle:  # one payload: visible when complete
            handle.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def write_json(self, payload: Any, indent: int | None = 1) -> None:
        self.write_text(json.dumps(payload, indent=indent))

    def upload(self, source: Path) -> None:
        """Copy a local file here: atomically on local disks, streamed to object stores (guard
        multi-file sets with a manifest written last; see the module docstring)."""
        source = Path(source)
        if self.is_local:
            def copy(handle) -> None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, handle, _CHUNK)
            _atomic_local_write(Path(self.path), copy)
            return
        with open(source, "rb") as src, self.fs.open_output_stream(self.path) as dst:
            while block := src.read(_CHUNK):
                dst.write(block)

    def delete(self) -> None:
        """Remove this file or folder (recursively); a missing one is not an error."""
        info = self._info()
        if info.type == pafs.FileType.File:
            self.fs.delete_file(self.path)
        elif info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)


def location(target: str | os.PathLike | Location) -> Location:
    """The Location of a local path or a URI (pyarrow resolves the scheme)."""
    if isinstance(target, Location):
        return target
    text = normalize(target)
    if not is_uri(text):
        return Location(pafs.LocalFileSystem(), text, "")
    scheme = text.split("://", 1)[0]
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError) as err:  # pyarrow.lib.ArrowInvalid is a ValueError
        raise ValueError(f"cannot open {text}: {err}") from err
    return Location(fs, path.rstrip("/"), scheme)


def _atomic_local_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_lines(loc: Location) -> Iterator[str]:
    """Non-empty lines of a text file ([] when it does not exist)."""
    if not loc.is_file():
        return iter(())
    return (line for line in loc.read_text().splitlines() if line.strip())
