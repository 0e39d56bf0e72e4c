from . import finetune, pretrain  # noqa: F401
