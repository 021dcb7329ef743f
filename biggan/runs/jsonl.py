"""A JSON-lines file in a run store (stats, metrics history) with one writer at a time.

Local disks append (one write + fsync per record). Object stores cannot append: the writer
keeps the file's text and uploads it whole on every append, a single PUT, so readers always
see a complete file. At the paper's scale a stats file grows to ~20 MB over 150k iterations
(1,500 records of a few hundred singular values), re-uploaded once per log tick: cheap beside a
checkpoint. A torn last line (a crash mid-append on a local disk) is skipped when reading and
never glued to the next record.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from biggan.storage import Location


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value


class JsonLines:
    """Records of one JSON-lines file."""

    def __init__(self, loc: Location):
        self.loc = loc  # the file
        self._text: str | None = None  # object stores: the writer's copy of the whole file

    def read(self) -> list[dict[str, Any]]:
        if not self.loc.is_file():
            return []
        records = []
        for line in self.loc.read_text().splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn line of a crash mid-append
        return records

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(_json_safe(record)) + "\n"
        if self.loc.is_local:
            path = self.loc.local_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            torn = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
            with open(path, "a") as handle:
                handle.write(("\n" if torn else "") + line)
                handle.flush()
                os.fsync(handle.fileno())
            return
        if self._text is None:
            self._text = self.loc.read_text() if self.loc.is_file() else ""
        self._text += line
        self.loc.write_text(self._text)

    def keep(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Rewrite the file with the records `predicate` keeps (e.g. those before a resume point)."""
        kept = [r for r in self.read() if predicate(r)]
        self._text = "".join(json.dumps(_json_safe(r)) + "\n" for r in kept)
        if kept or self.loc.is_file():
            self.loc.write_text(self._text)


def _ends_with_newline(path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
