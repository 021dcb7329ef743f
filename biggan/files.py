"""Small file helpers every area shares: content hashes and atomic writes (temp file in the
same folder, then os.replace), so a killed process never leaves a half-written file that looks whole."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to `path` through a temp file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary files meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: dict | list, indent: int = 1) -> None:
    """JSON through `atomic_write_text`."""
    atomic_write_text(path, json.dumps(payload, indent=indent))


def save_figure_atomic(fig, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically (same-folder temp PNG, then os.replace) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path


def source_fingerprint(package_dir: Path) -> str:
    """Hex sha256 over the relative paths and bytes of every .py file below `package_dir`.

    The Ray launcher compares the driver's and each worker's fingerprint of `biggan/`: a worker
    that imported different code (the package edited mid-run, another version on a node) would
    otherwise train, checkpoint and write options.json with a config the driver cannot read.
    """
    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
