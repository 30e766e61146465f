"""What every ``python -m rfb`` command shares: its exit statuses and the error that says why.

Exit status: 0 when the command did its work; 1 for a problem of this machine or this
moment (a port in use, no GPU for ``--gpu``, no route that can run), said in one line;
2 for a usage error (argparse's, or a route name that is unknown or belongs to the
other option).
"""

from __future__ import annotations

EXIT_RUNTIME = 1  # this machine or this moment: a port in use, no GPU, no route that runs here
EXIT_USAGE = 2  # the command line: argparse's own errors, a route name that is unknown or of the other kind


class CommandError(Exception):
    """A problem the user can fix, said in one line: the command prints it and exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code
