"""How every command reports a user's mistake: one line ``error: ...`` on stderr and exit status 2, no traceback.

A user's mistake is a ``ValueError`` (a bad flag value, a bad file's contents; each names the flag or file)
or an ``OSError`` (a missing or unreadable file); Ctrl-C is one line too, with status 130. A closed pipe
(``... | head -1``) ends the command quietly, and text the terminal cannot show is written with backslash
escapes instead of raising.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

__all__ = ["USAGE_ERROR", "INTERRUPTED", "handle_errors", "tolerant_output"]

USAGE_ERROR = 2  # argparse's own exit status for a bad command line
INTERRUPTED = 130  # the shell's status for a command ended by SIGINT (128 + 2)


def handle_errors(command: Callable[..., int]) -> Callable[..., int]:
    """``command`` returning 2 after one ``error: ...`` line for a user's mistake, and 0 on a closed pipe."""

    @functools.wraps(command)
    def run(*args, **kwargs) -> int:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:  # the reader went away (| head): nothing left to say to it
            _silence_stdout()
            return 0
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt as error:  # Ctrl-C: one line (a command may say what was kept), status 130
            print(f"error: {error or 'interrupted'}", file=sys.stderr)
            return INTERRUPTED

    return run


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in a test)
        pass


def tolerant_output() -> None:
    """stdout and stderr write what their encoding cannot hold as backslash escapes, never UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
