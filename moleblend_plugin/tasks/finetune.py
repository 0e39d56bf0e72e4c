"""Task `moleblend_finetune`: property prediction on prepared shards.

Classification targets (multi-task binary, NaN = missing label) or regression targets
(standardized with the train-split mean/std of the manifest; metrics in original units).
The model's --input-modality decides whether coordinates are used (3d, 2d+3d) or not (2d,
and 2d+predicted3d, whose distances a frozen copy of the pretrained model predicts).
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from fairseq.tasks import register_task
from omegaconf import II

from ..errors import UserError
from .molecule_task import MoleculeTask, MoleculeTaskConfig

logger = logging.getLogger(__name__)


@dataclass
class FinetuneConfig(MoleculeTaskConfig):
    targets: str = field(default="", metadata={"help": "comma-separated target names from the manifest to train on (default: all)"})
    # Whether a checkpoint will be loaded after the model is built (2d+predicted3d needs one).
    finetune_from_model: Optional[str] = II("checkpoint.finetune_from_model")


@register_task("moleblend_finetune", dataclass=FinetuneConfig)
class FinetuneTask(MoleculeTask):
    def __init__(self, cfg: FinetuneConfig):
        super().__init__(cfg)
        available = self.manifest["targets"]
        names = [t["name"] for t in available]
        wanted = [n.strip() for n in cfg.targets.split(",") if n.strip()] or names
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise UserError(f"{cfg.data}: no target(s) {unknown}; the manifest has {names}")
        self.target_columns = np.array([names.index(n) for n in wanted], dtype=np.int64)
        self.targets = [available[i] for i in self.target_columns]
        kinds = {t["task_type"] for t in self.targets}
        if len(kinds) != 1:
            raise UserError(f"targets {wanted} mix classification and regression; train them in separate runs")
        self.task_type = kinds.pop()
        self.target_mean = np.array([t.get("mean") or 0.0 for t in self.targets], dtype=np.float32)
        self.target_std = np.array([t.get("std") or 1.0 for t in self.targets], dtype=np.float32)
        if self.task_type == "regression" and not np.all(self.target_std > 0):
            raise UserError(f"{cfg.data}: a regression target has no train-split spread (std 0): {wanted}")
        logger.info("fine-tuning on %d %s target(s): %s", len(wanted), self.task_type, ", ".join(wanted))
        # A dataset built from OGB's files is also scored with OGB's own Evaluator.
        self.ogb = self.manifest.get("source", {}).get("ogb")
        # Saved in checkpoints (fairseq's task_state) beside the featurization, so that a
        # fine-tuned model predicts in original units without its prepared dataset.
        self.state.merge_state_dict({
            "targets": [{"name": t["name"], "unit": t.get("unit", ""), "task_type": t["task_type"],
                         "mean": float(m), "std": float(s)}
                        for t, m, s in zip(self.targets, self.target_mean, self.target_std)],
        })

    def load_state_dict(self, state_dict):
        """A checkpoint's stored statistics win over the dataset's: the model was trained with them."""
        super().load_state_dict(state_dict)
        stored = state_dict.get("targets")
        if stored:
            names = [t["name"] for t in stored]
            if names != [t["name"] for t in self.targets]:
                raise ValueError(f"the checkpoint predicts {names}, the task is set up for "
                                 f"{[t['name'] for t in self.targets]}")
            self.target_mean = np.array([t["mean"] for t in stored], dtype=np.float32)
            self.target_std = np.array([t["std"] for t in stored], dtype=np.float32)

    def build_model(self, cfg, *args, **kwargs):
        from ..models.moleblend import PREDICTED_3D, needs_coordinates  # tasks are imported before models

        if str(getattr(cfg, "input_modality", "")) == PREDICTED_3D:
            self._check_pretrained_source(cfg)
        model = super().build_model(cfg, *args, **kwargs)
        modality = str(model.cfg.input_modality)
        if needs_coordinates(modality):
            # Checked here rather than at the first forward pass, minutes into a run.
            geometry = self.manifest.get("geometry", {})
            with_3d = sum(geometry.get(kind, 0) for kind in ("source", "rdkit_etkdg_mmff"))
            if with_3d < self.manifest["num_molecules"]:
                raise UserError(f"--input-modality {modality} needs 3D coordinates for every molecule, but "
                                f"{self.cfg.data} has {with_3d} of {self.manifest['num_molecules']} with 3D "
                                f"(geometry: {geometry}); use --input-modality 2d, or prepare the data with "
                                "--conformers 1 (and without --on-conformer-failure 2d)")
        return model

    def _check_pretrained_source(self, model_cfg) -> None:
        """2d+predicted3d takes its distance predictor from a checkpoint: from
        --init-from-checkpoint, --finetune-from-model or the run's own checkpoint on resume."""
        restore = self.cfg.restore_file or "checkpoint_last.pt"
        resuming = os.path.exists(restore if os.path.isabs(restore) else os.path.join(self.cfg.save_dir or "", restore))
        if not (getattr(model_cfg, "init_from_checkpoint", "") or self.cfg.finetune_from_model or resuming):
            raise UserError("--input-modality 2d+predicted3d needs a pretrained checkpoint whose distance head "
                            "predicts the distances: give --init-from-checkpoint or --finetune-from-model")

    @property
    def num_targets(self) -> int:
        return len(self.target_columns)

    def load_dataset(self, split, combine=False, epoch=1, **kwargs):
        super().load_dataset(split, combine, epoch, **kwargs)
        self.datasets[split].target_columns = self.target_columns
