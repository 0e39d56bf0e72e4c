"""What the pretraining and fine-tuning tasks share: reading prepared shards into datasets."""
import logging
import os
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask
from omegaconf import II

from ..checkpoints.recovery import repair_restore_file
from ..cpu_autocast import AutocastCriterion, describe_cpu_bf16_support
from moleblend_data.featurize import check_featurization_version
from ..data.molecule_dataset import MoleculeDataset
from moleblend_data.shards import MoleculeShards, read_manifest
from ..errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class MoleculeTaskConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "prepared dataset folder (manifest.json + shard-*.lmdb, from `python -m data_prep`)"})
    conformers: ChoiceEnum(["random", "first"]) = field(
        default="random", metadata={"help": "training conformer per molecule: a random one per epoch, or always the first (valid/test always take the first)"})
    max_atoms: int = field(default=512, metadata={"help": "largest molecule (atoms) batches may hold"})
    cpu_bf16_autocast: bool = field(
        default=False, metadata={"help": "run each training and validation step's forward and losses under "
                                         "torch.autocast('cpu', bfloat16): matrix products in bf16, parameters, "
                                         "gradients and optimizer state in fp32 (fast on CPUs with AMX-BF16 or "
                                         "AVX512-BF16; fairseq's --bf16 casts the whole model and needs a GPU)"})
    seed: int = II("common.seed")
    # Where fairseq resumes from: checked (and repaired from an intact checkpoint) at set-up.
    save_dir: str = II("checkpoint.save_dir")
    restore_file: str = II("checkpoint.restore_file")


class MoleculeTask(FairseqTask):
    is_pretraining = False

    def __init__(self, cfg: MoleculeTaskConfig):
        super().__init__(cfg)
        if not cfg.data:
            raise UserError("give the prepared dataset folder (python -m data_prep ... --output DIR) as the "
                            "first argument of fairseq-train")
        try:
            self.manifest = read_manifest(cfg.data)
            check_featurization_version(self.manifest, cfg.data)
        except (FileNotFoundError, ValueError) as error:  # no dataset there, damaged, old version
            raise UserError(str(error)) from None
        # Saved in checkpoints (fairseq's task_state): a model featurizes new molecules as
        # its training data was featurized, without the prepared dataset.
        self.state.merge_state_dict({
            "featurization": {**self.manifest.get("featurization", {}),
                              "featurization_version": self.manifest.get("featurization_version")},
            "source_type": self.manifest.get("source", {}).get("type", ""),
        })
        if cfg.cpu_bf16_autocast:
            logger.info("steps run under CPU bf16 autocast; %s", describe_cpu_bf16_support())

    @property
    def task_name(self) -> str:
        """The registered name, which is also the name of the task's criterion."""
        return "moleblend_pretrain" if self.is_pretraining else "moleblend_finetune"

    def build_criterion(self, cfg, *args, **kwargs):
        # The other objective's criterion (or fairseq's default) would fail at the first batch.
        criterion_name = getattr(cfg, "_name", None)
        if criterion_name != self.task_name:
            raise UserError(f"--task {self.task_name} needs --criterion {self.task_name}, not {criterion_name}")
        return super().build_criterion(cfg, *args, **kwargs)

    def build_model(self, cfg, *args, **kwargs):
        arch = getattr(cfg, "_name", None) or getattr(cfg, "arch", None)
        model = super().build_model(cfg, *args, **kwargs)
        from ..models.moleblend import MoleBlendModel  # tasks are imported before models

        if not isinstance(model, MoleBlendModel):
            raise UserError(f"--task {self.task_name} needs a moleblend model (--arch moleblend_base, moleblend_small "
                            f"or moleblend_tiny), not --arch {arch}")
        return model

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

    def _step_criterion(self, criterion):
        return AutocastCriterion(criterion) if self.cfg.cpu_bf16_autocast else criterion

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        return super().train_step(sample, model, self._step_criterion(criterion), optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        return super().valid_step(sample, model, self._step_criterion(criterion))

    def max_positions(self):
        return self.cfg.max_atoms + 1

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return None
