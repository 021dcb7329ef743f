"""Small file helpers every area shares: content hashes, figure saves (atomic, through the
storage layer) and the source fingerprint of the package."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_figure_atomic(fig, target, dpi: int = 100):
    """Save a matplotlib figure as PNG, atomically, to a local path or a storage URI; close it."""
    import io

    import matplotlib.pyplot as plt

    from biggan.storage import location

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    target = location(target)
    target.write_bytes(buffer.getvalue())
    return target


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
