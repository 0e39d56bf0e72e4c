from . import pretrain  # noqa: F401
