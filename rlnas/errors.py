"""The rlnas error hierarchy.

``RlnasError`` is the root. ``UserError`` and its subclasses are mistakes a user can fix (bad config,
missing data, unknown run directory); the CLI turns them into a one-paragraph message and exit code 2.
``ChildFailure`` is raised while training a child network and becomes a FAILED trial, never a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class RlnasError(Exception):
    """Base class of every error rlnas raises on purpose."""


class UserError(RlnasError):
    """A mistake the user can fix; the message says what was wrong and how to fix it."""


class ConfigError(UserError):
    """Invalid configuration: unknown key, bad value, malformed YAML."""


class SpaceError(ConfigError):
    """Invalid search-space definition."""


class DataError(UserError):
    """A dataset cannot be found or loaded."""


class RunDirError(UserError):
    """A run directory is missing, not writable, or not an rlnas run."""


class InvalidArchitecture(RlnasError):
    """An architecture that does not belong to its search space or cannot be built."""


class ChildFailure(RlnasError):
    """Training or scoring a child network failed (exception, NaN loss, timeout)."""


class CallbackError(RlnasError):
    """A callback given to a search (``on_epoch``) raised; the search stops, every finished trial is stored.
    The callback's exception is the cause (``__cause__``)."""


class FaultError(RlnasError):
    """A fault outside rlnas stopped the work (a worker that cannot start, a full disk); every finished
    trial is stored and the run can be resumed once the cause is gone. The CLI prints it and exits 1."""


class WorkerError(FaultError):
    """A worker process cannot start."""


class DiskFullError(FaultError):
    """No space left for the run's files."""


def is_disk_full(err: BaseException) -> bool:
    """An OSError for a full disk or quota, or SQLite's "database or disk is full"."""
    import errno
    import sqlite3

    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(err, sqlite3.OperationalError) and "disk is full" in str(err)


@contextlib.contextmanager
def full_disk_stops(where: object, fix: str) -> Iterator[None]:
    """Turn a full disk inside the block into one DiskFullError: ``no space left for WHERE (...); FIX``."""
    import sqlite3

    try:
        yield
    except (OSError, sqlite3.OperationalError) as err:
        if not is_disk_full(err):
            raise
        raise DiskFullError(f"no space left for {where} ({err}); {fix}") from None
