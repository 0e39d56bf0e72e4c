"""fairseq-train's --log-file written once per record.

fairseq 0.12's `progress_bar.progress_bar` adds a new FileHandler for --log-file to its
logger at every call, that is for every epoch's progress bar, so epoch k's validation
record is written k times (5,050 lines for the 100 records of 100 epochs). Wrapped here:
the handler is added only when that logger has none for the file yet.
"""
import logging
import os

_WRAPPED = "_moleblend_log_file_once"


def add_log_file_handler_once() -> None:
    from fairseq.logging import progress_bar as module

    original = module.progress_bar
    if getattr(original, _WRAPPED, False):
        return

    def progress_bar(*args, log_file=None, **kwargs):
        if log_file is not None:
            path = os.path.abspath(log_file)
            if any(isinstance(h, logging.FileHandler) and h.baseFilename == path for h in module.logger.handlers):
                log_file = None
        return original(*args, log_file=log_file, **kwargs)

    setattr(progress_bar, _WRAPPED, True)
    module.progress_bar = progress_bar
