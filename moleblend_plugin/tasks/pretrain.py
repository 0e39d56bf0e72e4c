"""Task `moleblend_pretrain`: blend-then-predict pretraining on prepared shards."""
import logging
from dataclasses import dataclass

from fairseq.tasks import register_task

from ..data.molecule_subset import MoleculeSubset
from ..seeding import seeded_for_batch
from .molecule_task import MoleculeTask, MoleculeTaskConfig

logger = logging.getLogger(__name__)

# Relations are learned from atom pairs: a molecule needs two atoms to have one.
MIN_ATOMS = 2


@dataclass
class PretrainConfig(MoleculeTaskConfig):
    pass


@register_task("moleblend_pretrain", dataclass=PretrainConfig)
class PretrainTask(MoleculeTask):
    """Reads the shards of any split; the model's --pretrain-mode decides the objective."""

    is_pretraining = True

    def load_dataset(self, split, combine=False, epoch=1, **kwargs):
        super().load_dataset(split, combine, epoch, **kwargs)
        dataset = self.datasets[split]
        keep = dataset.sizes >= MIN_ATOMS
        if not keep.all():
            logger.info("%s: %d single-atom molecules left out (no atom pairs to predict relations of)",
                        split, int((~keep).sum()))
            self.datasets[split] = MoleculeSubset(dataset, keep)

    def valid_step(self, sample, model, criterion):
        # Validation blends and adds noise as training does; seeded per batch, the same
        # checkpoint on the same data gives the same metrics.
        with seeded_for_batch(self.cfg.seed, sample["id"]):
            return super().valid_step(sample, model, criterion)
