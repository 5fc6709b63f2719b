"""The one error type every `recording-archive` command raises for a problem the user can fix.

`main` prints its message as one line on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations


class CLIError(Exception):
    """A problem the user can fix (a port in use, an unreachable endpoint, a bad option).

    The message is one line, printed as is; `exit_code` is the process exit status.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
