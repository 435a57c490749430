"""The ways a verb ends early, each carrying the exit status Docker's CLI would use.

A *failure* is an exception a verb raises instead of returning an exit status; ``main`` catches it,
prints its message to stderr and exits with its status. Nothing here imports anything.
"""

from __future__ import annotations


class CliFailure(Exception):
    """End the verb: print ``message`` (if any) to stderr and exit with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class FlagError(CliFailure):
    """A bad command line (unknown flag, missing value, bad value); Docker exits 125 for these."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 125)


class ArgCountError(CliFailure):
    """Too few or too many positional arguments; ``hint`` is Docker's closing "See"/"Run" word."""

    def __init__(self, message: str, hint: str = "Run") -> None:
        super().__init__(message, 1)
        self.hint = hint


class HelpRequested(Exception):
    """``-h``/``--help`` was given: print the verb's help to stdout and exit 0."""


class ConnectFailure(CliFailure):
    """Nothing answered at the daemon's address (Docker's "Cannot connect to the Docker daemon")."""

    def __init__(self, host: str) -> None:
        super().__init__(f"Cannot connect to the dockyard daemon at {host}. Is the dockyard daemon running?", 1)
        self.host = host


class DaemonError(CliFailure):
    """The daemon answered 4xx/5xx; ``message`` is its ``{"message": ...}`` text, unprefixed."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}", 1)
        self.status_code = status_code
        self.daemon_message = message
