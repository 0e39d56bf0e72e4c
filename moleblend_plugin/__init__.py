"""MoleBlend for fairseq: `fairseq-train --user-dir moleblend_plugin ...`.

Importing the package registers its tasks, models and criterions with fairseq and
allow-lists the classes fairseq checkpoints contain, so that fairseq's own resume
works under torch's weights-only loading.
"""
from .checkpoints.safe_loading import allow_checkpoint_globals

allow_checkpoint_globals()

from . import criterions, models, tasks  # noqa: E402,F401  (registration)
