"""MoleBlend for fairseq: `fairseq-train --user-dir moleblend_plugin ...`.

fairseq imports this package for --user-dir after importing itself; the package then
registers its tasks, models and criterions and allow-lists the classes fairseq
checkpoints contain, so that fairseq's own resume works under torch's weights-only
loading. Without fairseq loaded (data preparation, `moleblend_plugin.data`), nothing
is registered and neither torch nor fairseq is imported: a data_prep worker stays small.
Code that needs the registrations without going through fairseq's --user-dir imports
`moleblend_plugin.tasks`, `.models` or `.criterions` directly.
"""
import sys

if "fairseq" in sys.modules:
    from .checkpoints.safe_loading import allow_checkpoint_globals

    allow_checkpoint_globals()

    from . import criterions, models, tasks  # noqa: E402,F401  (registration)
