"""TensorBoard event files of a run, so `tensorboard --logdir <store>` shows every run as it trains.

Layout (inside the run folder, so a store's runs are TensorBoard's runs, named by run folder):

    tensorboard/train/   rank 0 of the trainer: every scalar of each stats record, sample sheets
    tensorboard/eval/    the evaluate node: IS/FID/KID/... per scored checkpoint, at its iteration

One folder `tensorboard/` keeps the event files (which TensorBoard finds by name anywhere below
--logdir) apart from the run's own files, and lets `aws s3 sync <run>/tensorboard` fetch the
plots alone. Trainer and evaluator write separate files in separate sub-folders, shown as the
runs `<name>/tensorboard/train` and `<name>/tensorboard/eval`. Why not one folder: TensorBoard's
Python loader (used for s3:// logdirs, and wherever the Rust data server is missing) reads a
folder's files one after the other in name order and never goes back to an older one, so a live
training file stops updating once an evaluation file appears beside it (seen with TensorBoard
2.21 and `--load_fast=false`; its Rust data server does follow both). Separate folders also keep
a resume's purge (below) from hiding evaluation points.

Writing. Event files are append-only TFRecord logs (length + CRC per record): a reader stops at a
torn tail and picks it up once complete, which is why TensorBoard itself appends in place. Local
runs append to the file in the run folder. Object stores cannot append: the writer appends to a
local temp file and, at every flush (each log tick and sample sheet), uploads the whole file as
one object of the same name (`Location.write_bytes`, one PUT). That is sound because the file only
grows, so each upload is a complete snapshot that holds every earlier one as its prefix, and a
failed upload loses nothing: the next one carries it. Past ROTATE_BYTES (sheets make files big)
a new file is started, so a tick never re-uploads more than about that much.

Resume. A run resumed from the checkpoint at iteration k starts a new file beginning with a
SessionLog START event at step k+1 (torch's SummaryWriter(purge_step=k+1)): TensorBoard drops
every point at step > k read before it, so the points logged between k and the crash are replaced
by the resumed run's, as stats.jsonl keeps records up to k only. A rollback to the checkpoint at
k writes the same START event into the open file, then `collapse/rollback` (its number) and
`collapse/rolled_back_from` (the iteration it collapsed at) at step k: the chart of each shows
the rollbacks, and the abandoned points give way to the new ones as after a resume.

A failing write logs one warning (`biggan.runs.tensorboard`) and is otherwise ignored: a user's training is worth
more than a plot. The writer is tensorboard's own EventFileWriter (what torch.utils.tensorboard
wraps): it writes the sheet's PNG bytes as they are and lets the run store own file and flushes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biggan.storage import Location

TENSORBOARD_DIR = "tensorboard"
TRAIN, EVAL = "train", "eval"  # the writers' sub-folders (and file name suffixes)
SAMPLES_TAG = "samples/G_ema"
ROTATE_BYTES = 32 << 20  # object stores: start a new event file past this size

log = logging.getLogger("biggan.runs.tensorboard")


PER_LAYER = ("sv/", "fro/", "grad_norm/")  # `<what>/<net>/<layer>...` keys, one chart per layer


def stats_scalars(record: dict[str, Any]) -> dict[str, float]:
    """Tag -> value for every scalar of a stats record. Per-layer values (singular values
    `sv/G/<layer>/<k>`, Frobenius norms `fro/G/<layer>`, gradient norms `grad_norm/G/<layer>`)
    become `sv_G/<layer>/<k>`, `fro_G/<layer>`, `grad_norm_G/<layer>`: TensorBoard groups charts by
    the tag's first component, so each network's layers get a section per quantity instead of one
    section of hundreds of charts. The networks' total gradient norms (`grad_norm/G`) stay as they are."""
    out = {}
    for key, value in record.items():
        if key == "iteration" or not isinstance(value, (int, float)):
            continue  # the step itself; strings such as "nan" from JSON-safe records
        if key.startswith(PER_LAYER) and key.count("/") >= 2:
            what, net, rest = key.split("/", 2)
            key = f"{what}_{net}/{rest}"
        out[key] = float(value)  # bools (collapse_tripped) plot as 0/1
    return out


def eval_scalars(figures: dict[str, Any], truncation: float | None) -> dict[str, float]:
    """`eval/FID`, `eval/IS`, ...; a truncated evaluation is another setting: `eval_t0.5/FID`."""
    group = "eval" if truncation is None else f"eval_t{truncation:g}"
    return {f"{group}/{name}": float(value) for name, value in figures.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def png_size(png: bytes) -> tuple[int, int, int]:
    """(width, height, channels) from a PNG's IHDR chunk (TensorBoard's image proto wants them)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(png[25], 3)  # colour type -> channels (palette: RGB)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"), channels


class EventWriter:
    """The event file(s) of one writer in `<run>/tensorboard/<role>/`; no method raises."""

    def __init__(self, folder: Location, role: str, purge_after: int | None = None):
        self.folder = folder  # <run>/tensorboard/<role>
        self.role = role  # "train" or "eval": the file name suffix
        self._warned: set[str] = set()  # one warning per distinct failure
        self._writer = None  # tensorboard's EventFileWriter; None when it could not be opened
        self._tmp: tempfile.TemporaryDirectory | None = None  # object stores: the local copy
        self._guard("open an event file", lambda: self._open(purge_after))

    # ------------------------------------------------------------------ what callers write

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One event holding every value (one record per tick, not one per tag)."""
        def add() -> None:
            from tensorboard.compat.proto.summary_pb2 import Summary

            self._add(step, summary=Summary(value=[Summary.Value(tag=tag, simple_value=v)
                                                   for tag, v in values.items()]))

        if values:
            self._guard("write scalars", add)

    def png(self, tag: str, step: int, png: bytes) -> None:
        """An image from encoded PNG bytes, stored as they are (no decode/re-encode)."""
        def add() -> None:
            from tensorboard.compat.proto.summary_pb2 import Summary

            width, height, channels = png_size(png)
            image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
            self._add(step, summary=Summary(value=[Summary.Value(tag=tag, image=image)]))

        self._guard("write an image", add)

    def flush(self) -> None:
        """Make everything written so far visible: on disk, and on object stores uploaded."""
        self._guard("flush the event file", self._flush)

    def close(self) -> None:
        self._guard("close the event file", self._close)

    # ------------------------------------------------------------------ stats and sheets

    def log_stats(self, record: dict[str, Any]) -> None:
        """A stats record (rank 0, each log tick) at its iteration, flushed."""
        self.scalars(int(record["iteration"]), stats_scalars(record))
        self.flush()

    def log_rollback(self, event: dict[str, Any]) -> None:
        """A rollback (biggan.runs.history) to iteration k: TensorBoard's restart marker at k + 1,
        then the rollback's number and where it collapsed as scalars at step k, flushed."""
        from tensorboard.compat.proto.event_pb2 import SessionLog

        to = int(event["to_iteration"])
        self._guard("mark a rollback", lambda: self._add(to + 1, session_log=SessionLog(status=SessionLog.START)))
        self.scalars(to, {"collapse/rollback": float(event["rollback"]),
                          "collapse/rolled_back_from": float(event["collapsed_at"])})
        self.flush()

    def log_sheet(self, iteration: int, sheet: Location) -> None:
        """The sample sheet the run store holds (the same PNG bytes), flushed."""
        if self._writer is None:
            return  # nothing to write into (the failure was reported when opening)
        data = self._guard("read the sample sheet", sheet.read_bytes)
        if data is not None:
            self.png(SAMPLES_TAG, iteration, data)
            self.flush()

    # ------------------------------------------------------------------ the file

    def _open(self, purge_after: int | None) -> None:
        from tensorboard.compat.proto.event_pb2 import SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self.folder.is_local:
            logdir = self.folder.local_path()
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="biggan-tensorboard-")
            logdir = Path(self._tmp.name)
        self._writer = EventFileWriter(str(logdir), filename_suffix=f".{self.role}")
        if purge_after is not None:
            # TensorBoard's restart convention: drop points at step >= purge_after + 1 read so far.
            self._add(purge_after + 1, session_log=SessionLog(status=SessionLog.START))
            self._flush()

    def _add(self, step: int, **payload) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        if self._writer is not None:
            self._writer.add_event(Event(wall_time=time.time(), step=int(step), **payload))

    def _local_file(self) -> Path | None:
        """Object stores: the one event file of the current temp folder (None for local runs)."""
        files = list(Path(self._tmp.name).glob("events.out.tfevents.*")) if self._tmp else []
        return files[0] if files else None

    def _flush(self) -> None:
        if self._writer is None:
            return
        self._writer.flush()
        local = self._local_file()
        if local is None:
            return
        # One PUT of the whole file under its own name: readers see the old or the new snapshot.
        (self.folder / local.name).write_bytes(local.read_bytes())
        if local.stat().st_size > ROTATE_BYTES:
            self._writer.close()  # nothing was added since the upload above: that copy is final
            self._tmp.cleanup()
            self._writer, self._tmp = None, None
            self._open(purge_after=None)

    def _close(self) -> None:
        if self._writer is None:
            return
        self._flush()
        self._writer.close()
        self._writer = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - a plot must never stop training
            message = f"TensorBoard: could not {what} in {self.folder.uri}: {type(err).__name__}: {err}"
            if message not in self._warned:
                self._warned.add(message)
                log.warning("%s", message)
            return None


def write_eval_scalars(folder: Location, iteration: int, figures: dict[str, Any], truncation: float | None) -> None:
    """The evaluate node's figures for one checkpoint, in a new small file of `folder` (closed at once,
    so concurrent evaluators never append to each other's files)."""
    values = eval_scalars(figures, truncation)
    if not values:
        return
    writer = EventWriter(folder, EVAL)
    writer.scalars(iteration, values)
    writer.close()
