"""The launcher refuses a Ray worker whose biggan code differs from the driver's."""

from __future__ import annotations

import pytest

from biggan.files import source_fingerprint
from biggan.train.launcher import check_same_code, package_fingerprint


def test_source_fingerprint_follows_content_and_names_not_location(tmp_path):
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "sub").mkdir(parents=True)
        (root / "x.py").write_text("X = 1\n")
        (root / "sub" / "y.py").write_text("Y = 2\n")
        (root / "notes.txt").write_text("not code")
    a, b = tmp_path / "a", tmp_path / "b"
    assert source_fingerprint(a) == source_fingerprint(b)  # same code at another path
    (b / "notes.txt").write_text("changed, but not code")
    assert source_fingerprint(a) == source_fingerprint(b)
    (b / "sub" / "y.py").write_text("Y = 3\n")
    assert source_fingerprint(a) != source_fingerprint(b)
    (b / "sub" / "y.py").write_text("Y = 2\n")
    (b / "sub" / "y.py").rename(b / "sub" / "z.py")
    assert source_fingerprint(a) != source_fingerprint(b)


def test_worker_with_other_code_is_refused_with_a_clear_message():
    check_same_code(package_fingerprint())  # the same code: trains
    check_same_code(None)  # a driver that sent no fingerprint: nothing to compare
    with pytest.raises(RuntimeError, match="differs from the driver's.*Sync the code"):
        check_same_code("0" * 64)
