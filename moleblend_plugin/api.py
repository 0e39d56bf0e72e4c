"""Python API: fine-tune from a DataFrame or CSV and get a predictor back; embed molecules.

    import pandas as pd
    from moleblend_plugin.api import FineTuner, MoleculeEmbedder

    tuner = FineTuner(output="runs/esol", target_columns=["logS"], smiles_column="smiles")
    predictor = tuner.fit(pd.read_csv("esol.csv"))       # or fit("esol.csv")
    tuner.metrics["test"]["rmse"]                          # scores of the best-valid checkpoint
    values, errors = predictor.predict(["CCO", "c1ccccc1O"])

    embedder = MoleculeEmbedder.from_checkpoint("runs/pretrain/checkpoints/checkpoint_best.pt")
    vectors = embedder.embed(["CCO"]).graph_token

`FineTuner.fit` runs what `moleblend finetune` runs (the same function, the same run
folder and report); its keyword arguments are that command's flags.
"""
from __future__ import annotations

import os
from .embeddings import MoleculeEmbedder
from .errors import UserError
from .inference import MoleBlendPredictor
from .workflows.finetune import FinetuneRequest, finetune

__all__ = ["FineTuner", "MoleBlendPredictor", "MoleculeEmbedder"]


class FineTuner:
    """Fine-tune on labelled molecules; `fit` returns a MoleBlendPredictor of the best-valid checkpoint.

    output: the run folder. Other keyword arguments are FinetuneRequest's fields (the flags
    of `moleblend finetune`: smiles_column, split, split_column, folds, fold, pretrained,
    input_modality, arch, batch_size, max_epoch, lr, freeze_layers, seed, device, ...).
    """

    def __init__(self, output: str, target_columns, **options):
        if isinstance(target_columns, str):
            target_columns = [target_columns]
        self.output = output
        self.target_columns = list(target_columns)
        self.options = options
        self.metrics: dict = {}

    def _as_csv(self, data, name: str) -> str:
        """A path to read `data` from: the CSV given, or a DataFrame written into the run folder."""
        if isinstance(data, (str, os.PathLike)):
            return os.fspath(data)
        if hasattr(data, "to_csv"):
            os.makedirs(self.output, exist_ok=True)
            path = os.path.join(os.path.abspath(self.output), f"{name}.csv")
            data.to_csv(path, index=False, lineterminator="\n")
            return path
        raise UserError(f"{name}: give a CSV path or a pandas DataFrame, not {type(data).__name__}")

    def fit(self, data, valid=None, test=None, quiet: bool = True) -> MoleBlendPredictor:
        """Train on `data` (CSV path or DataFrame); `valid` / `test` are separate files or
        frames, else the split options decide (default: scaffold 80/10/10)."""
        request = FinetuneRequest(
            input=self._as_csv(data, "input"), output=self.output, target_columns=self.target_columns,
            valid_input=self._as_csv(valid, "valid_input") if valid is not None else "",
            test_input=self._as_csv(test, "test_input") if test is not None else "",
            quiet=quiet, **{"device": "cpu", **self.options})
        self.metrics = finetune(request)
        return MoleBlendPredictor.from_checkpoint(self.metrics["checkpoint"], device=request.device)

    @staticmethod
    def load(output: str, device: str = "cpu") -> MoleBlendPredictor:
        """The predictor of a finished run folder."""
        return MoleBlendPredictor.from_checkpoint(os.path.join(output, "checkpoints", "checkpoint_best.pt"),
                                                  device=device)
