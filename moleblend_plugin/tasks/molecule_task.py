"""What the pretraining and fine-tuning tasks share: reading prepared shards into datasets."""
import logging
import os
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask
from omegaconf import II

from ..checkpoints.recovery import repair_restore_file
from ..data.featurize import check_featurization_version
from ..data.molecule_dataset import MoleculeDataset
from ..data.shards import MoleculeShards, read_manifest

logger = logging.getLogger(__name__)


@dataclass
class MoleculeTaskConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "prepared dataset folder (manifest.json + shard-*.lmdb, from `python -m data_prep`)"})
    conformers: ChoiceEnum(["random", "first"]) = field(
        default="random", metadata={"help": "training conformer per molecule: a random one per epoch, or always the first (valid/test always take the first)"})
    max_atoms: int = field(default=512, metadata={"help": "largest molecule (atoms) batches may hold"})
    seed: int = II("common.seed")
    # Where fairseq resumes from: checked (and repaired from an intact checkpoint) at set-up.
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")


class MoleculeTask(FairseqTask):
    is_pretraining = False

    def __init__(self, cfg: MoleculeTaskConfig):
        super().__init__(cfg)
        if not cfg.data:
            raise ValueError("give the prepared dataset folder as the first argument of fairseq-train")
        self.manifest = read_manifest(cfg.data)
        check_featurization_version(self.manifest, cfg.data)

    @classmethod
    def setup_task(cls, cfg, **kwargs):
        # fairseq loads --restore-file after setting up the task; a copy cut short by a kill
        # during a save is replaced by the newest intact checkpoint first.
        save_dir = getattr(cfg, "save_dir", None)
        if save_dir and os.path.isdir(save_dir):
            repair_restore_file(save_dir, getattr(cfg, "restore_file", None) or "checkpoint_last.pt")
        return cls(cfg)

    def load_dataset(self, split, combine=False, epoch=1, **kwargs):
        shards = MoleculeShards(self.cfg.data, split)
        training = split == "train"
        # Coordinates are always read when present: a 2D-input model ignores them, and the
        # task is set up before the model whose --input-modality would tell.
        conformers = str(self.cfg.conformers) if training else "first"
        self.datasets[split] = MoleculeDataset(
            shards, shards.num_atoms, conformers=conformers, seed=self.cfg.seed, shuffle=training
        )
        logger.info("%s: %d molecules from %s (conformers: %s)", split, len(shards), self.cfg.data, conformers)

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        # fairseq rounds batch sizes to --required-batch-size-multiple (default 8) and then
        # drops the remainder of a split that does not fill a multiple: up to 7 valid or test
        # molecules would go unscored. Molecule batches gain nothing from the rounding.
        return super().get_batch_iterator(dataset, *args, required_batch_size_multiple=1, **kwargs)

    def max_positions(self):
        return self.cfg.max_atoms + 1

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return None
