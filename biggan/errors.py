"""Errors that are the user's to fix: a bad path, bad data, a bad setting, a damaged file.

Each says what is wrong in one line (the key, the file or the value and the rule). The CLI
prints that line without a traceback, and the flows never retry them: retrying a missing file
only delays the same message.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every user-fixable error; its message is the whole story, on one line."""


class DataError(UserError, ValueError):
    """A data set, shard set or source list that cannot be used as it is."""


class DamagedShard(DataError):
    """A shard tar that is missing, of the wrong size, has the wrong hash or does not read."""
