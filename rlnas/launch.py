"""The ``rlnas`` command's entry point: imports the CLI (torch and friends: seconds) where a Ctrl-C meets a
handler, then runs it."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # as rlnas.cli_run's, without importing it


def main() -> int:
    try:
        from rlnas.cli import main as run
    except KeyboardInterrupt:
        print("rlnas: interrupted while starting; nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run()
