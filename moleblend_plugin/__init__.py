"""MoleBlend for fairseq: `fairseq-train --user-dir moleblend_plugin ...`.

Importing the package registers its tasks, models and criterions with fairseq and
allow-lists the classes fairseq checkpoints contain, so that fairseq's own resume works
under torch's weights-only loading. Registration happens on any import of the package
(also `moleblend_plugin.data`), because fairseq does not import a --user-dir package a
second time: a package first imported without registering would stay unregistered.
It also makes the plugin's own `errors.UserError` print as one line when uncaught,
silences a short list of known, harmless third-party warnings (`quiet_warnings`),
leaves the root logger as the program set it (`root_logging`), and has fairseq write
each record to --log-file once (`log_file_once`).
"""
from .root_logging import root_logger_kept

with root_logger_kept():  # fairseq's import would set the root logger to DEBUG
    from .checkpoints.safe_loading import allow_checkpoint_globals
    from .errors import install_one_line_errors
    from .log_file_once import add_log_file_handler_once
    from .quiet_warnings import silence_known_warnings

    allow_checkpoint_globals()
    install_one_line_errors()  # the plugin's UserError as one line under fairseq-train
    silence_known_warnings()  # fairseq's Hydra and torch.cuda.amp deprecations, by their text only
    add_log_file_handler_once()  # fairseq 0.12 writes epoch k's records k times to --log-file

    from . import criterions, models, optimizers, tasks  # noqa: F401  (registration)
