"""Keep the root logger as the importing program set it.

Importing fairseq imports its text-to-speech task modules, which call
`logging.basicConfig(level=DEBUG)`: in a program that has not configured logging (a
script using the plugin's Python API, `moleblend embed`), every library's debug messages
(matplotlib's font search, data_prep's) would then print. Under fairseq-train, logging is
configured before the plugin is imported and nothing is undone.
"""
import contextlib
import logging


# fairseq modules that log at import: the text-to-speech tasks ask for tensorboardX, which
# only their own training uses.
IMPORT_TIME_LOGGERS = ("fairseq.tasks.text_to_speech", "fairseq.tasks.frm_text_to_speech")


@contextlib.contextmanager
def root_logger_kept():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    chatty = [logging.getLogger(name) for name in IMPORT_TIME_LOGGERS]
    chatty_levels = [logger.level for logger in chatty]
    for logger in chatty:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, previous in zip(chatty, chatty_levels):
            logger.setLevel(previous)
        if not handlers and (root.handlers or root.level != level):  # configured by an import, not the program
            for handler in root.handlers:
                root.removeHandler(handler)
            root.setLevel(level)
