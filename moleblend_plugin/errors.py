"""Mistakes a user can fix, reported as one line that says what is wrong and what to do.

`UserError` is raised where the plugin checks its set-up (data folder, task, criterion,
model, input modality). Under `fairseq-train`, whose own code would print a traceback,
an uncaught UserError prints as `error: <message>` and exits with status 1; set
MOLEBLEND_DEBUG=1 for the traceback. Any other exception is a bug and keeps its traceback.
"""
import os
import sys

DEBUG_VARIABLE = "MOLEBLEND_DEBUG"


class UserError(Exception):
    """A mistake in the command or its inputs; the message is the whole report."""


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _report_user_errors(previous_hook):
    def hook(kind, value, traceback):
        if issubclass(kind, UserError) and not debugging():
            print(f"error: {value}", file=sys.stderr)
            sys.stderr.flush()
            return
        previous_hook(kind, value, traceback)

    hook.moleblend_user_errors = True
    return hook


def install_one_line_errors() -> None:
    """Report uncaught UserErrors as one line (once per process; other exceptions unchanged)."""
    if not getattr(sys.excepthook, "moleblend_user_errors", False):
        sys.excepthook = _report_user_errors(sys.excepthook)


def run_command(main, argv=None) -> int:
    """Run a command-line main: a UserError, a bad file or value is one line on stderr and
    exit status 2 (the traceback with MOLEBLEND_DEBUG=1)."""
    try:
        return main(argv)
    except (UserError, ValueError, FileNotFoundError, KeyError) as error:
        if debugging():
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
