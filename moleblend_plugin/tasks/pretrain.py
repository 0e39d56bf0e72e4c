"""Task `moleblend_pretrain`: blend-then-predict pretraining on prepared shards."""
from dataclasses import dataclass

from fairseq.tasks import register_task

from .molecule_task import MoleculeTask, MoleculeTaskConfig


@dataclass
class PretrainConfig(MoleculeTaskConfig):
    pass


@register_task("moleblend_pretrain", dataclass=PretrainConfig)
class PretrainTask(MoleculeTask):
    """Reads the shards of any split; the model's --pretrain-mode decides the objective."""

    is_pretraining = True
