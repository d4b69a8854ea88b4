"""The rlnas error hierarchy.

``RlnasError`` is the root. ``UserError`` and its subclasses are mistakes a user can fix (bad config,
missing data, unknown run directory); the CLI turns them into a one-paragraph message and exit code 2.
``ChildFailure`` is raised while training a child network and becomes a FAILED trial, never a crash.
"""

from __future__ import annotations


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


class WorkerError(RlnasError):
    """A worker process cannot start; the search stops with every finished trial stored."""
