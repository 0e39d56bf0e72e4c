"""Predictions and molecule embeddings from a fine-tuned checkpoint, without fairseq-train.

    from moleblend_plugin.inference import MoleBlendPredictor

    predictor = MoleBlendPredictor.from_checkpoint("checkpoints/esol/checkpoint_best.pt")
    values, errors = predictor.predict(["CCO", "not a smiles", "c1ccccc1O"])
    # values: float array [3, num_targets] in the targets' original units (probabilities
    # for classification targets); row 1 is NaN and errors[1] says why ("invalid_smiles: ...").
    vectors, errors = predictor.embed(["CCO", "c1ccccc1O"])  # [2, hidden size]

Rows come back in input order, one per input, whether or not the molecule could be used.
A molecule is featurized with the rules and options of the dataset the model was trained
on (`make_record`, the same as data_prep), so it is rejected for the same reasons
(`featurize.REJECT_REASONS`). Models with 3D input (`3d`, `2d+3d`) get one RDKit conformer
per molecule (ETKDG + MMFF), unless the input is an RDKit molecule holding a 3D conformer
(read from an SDF, say), whose geometry is used as data_prep uses an SDF's; a model trained
on source geometries (QM9's DFT, PCQM4Mv2's SDF) sees RDKit geometries otherwise, which is
a shift from its training data.

The target names, units, train-split mean/std and the featurization options are read from
the checkpoint (stored by the `moleblend_finetune` task), so the prepared dataset is not
needed; checkpoints from before that fall back to the manifest at the stored data path.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from typing import List, NamedTuple, Sequence, Union

import numpy as np
import torch
from rdkit import Chem

from .checkpoints.safe_loading import load_checkpoint_file
from .data.collate import collate_molecules, molecule_inputs
from moleblend_data.featurize import FeaturizeOptions, RejectedMolecule, make_record, source_geometry_of
from moleblend_data.molecule import MoleculeRecord
from moleblend_data.shards import read_manifest
from .errors import UserError
from .models.moleblend import MoleBlendConfig, MoleBlendEncoder, MoleBlendModel, needs_coordinates

Molecule = Union[str, Chem.Mol]

# Inputs longer than this get a progress bar (when asked for one).
PROGRESS_MIN_MOLECULES = 256


@dataclass
class TargetInfo:
    """One predicted property: name, unit, task type and the train-split statistics that
    map the model's standardized output back to original units (regression)."""

    name: str
    unit: str
    task_type: str
    mean: float
    std: float


class Output(NamedTuple):
    """values: [num_inputs, width] floats, NaN rows where errors[i] is not empty."""

    values: np.ndarray
    errors: List[str]


class Outputs(NamedTuple):
    """predict and embed of one pass: predictions [n, targets], embeddings [n, hidden]."""

    predictions: np.ndarray
    embeddings: np.ndarray
    errors: List[str]


@dataclass
class FinetunedCheckpoint:
    """What a fine-tuned checkpoint holds that prediction and evaluation need."""

    model: MoleBlendModel
    targets: List[TargetInfo]
    featurization: dict
    source_type: str
    cfg: dict

    @property
    def task_type(self) -> str:
        return self.targets[0].task_type


def model_config(model_cfg: dict) -> MoleBlendConfig:
    """MoleBlendConfig from a checkpoint's stored model cfg (unknown keys ignored, new ones default).

    init_from_checkpoint is cleared: the fine-tuned weights replace whatever it pointed to,
    and the file need not exist where the model is used."""
    names = {f.name for f in fields(MoleBlendConfig)}
    values = {k: v for k, v in model_cfg.items() if k in names}
    values["init_from_checkpoint"] = ""
    return MoleBlendConfig(**values)


def _stored_targets(state: dict, cfg: dict, path: str):
    """Targets and featurization from the checkpoint's task state, else from the manifest."""
    task_state = state.get("task_state") or {}
    if task_state.get("targets"):
        targets = [TargetInfo(t["name"], t.get("unit", ""), t["task_type"], float(t["mean"]), float(t["std"]))
                   for t in task_state["targets"]]
        return targets, dict(task_state.get("featurization", {})), str(task_state.get("source_type", ""))
    data = cfg["task"].get("data", "")
    if not data or not os.path.exists(os.path.join(data, "manifest.json")):
        raise ValueError(f"{path} stores no target statistics and its dataset {data!r} is not here: "
                         "cannot map predictions to original units")
    manifest = read_manifest(data)
    available = {t["name"]: t for t in manifest["targets"]}
    wanted = [n.strip() for n in str(cfg["task"].get("targets", "")).split(",") if n.strip()] or list(available)
    targets = [TargetInfo(n, available[n].get("unit", ""), available[n]["task_type"],
                          float(available[n].get("mean") or 0.0), float(available[n].get("std") or 1.0))
               for n in wanted]
    return targets, manifest.get("featurization", {}), manifest.get("source", {}).get("type", "")


def load_task_checkpoint(path: str, tasks: Sequence[str], needed: str):
    """(state, cfg) of a fairseq checkpoint of one of `tasks`; a UserError ending in
    `needed` (what the caller wants instead) for any other file."""
    state = load_checkpoint_file(path)
    cfg = state.get("cfg")
    if not cfg or "model" not in cfg:
        raise UserError(f"{path}: not a fairseq checkpoint with a stored cfg")
    task_name = cfg["task"].get("_name")
    if task_name not in tasks:
        raise UserError(f"{path} is a checkpoint of task {task_name!r}; {needed}")
    return state, cfg


def load_finetuned(path: str, device: Union[str, torch.device] = "cpu") -> FinetunedCheckpoint:
    """Build the model of a `moleblend_finetune` checkpoint and load its weights exactly (eval mode)."""
    state, cfg = load_task_checkpoint(path, ["moleblend_finetune"],
                                      "a fine-tuned (moleblend_finetune) checkpoint is needed here")
    targets, featurization, source_type = _stored_targets(state, cfg, path)
    model_cfg = model_config(cfg["model"])
    model = MoleBlendModel(model_cfg, MoleBlendEncoder(model_cfg, len(targets), pretraining=False))
    # A fine-tuned checkpoint matches its own model exactly; anything else is an error.
    torch.nn.Module.load_state_dict(model, state["model"], strict=True)
    model.to(device).eval()
    return FinetunedCheckpoint(model, targets, featurization, source_type, cfg)


def prediction_values(raw: torch.Tensor, targets: Sequence[TargetInfo]) -> np.ndarray:
    """Model output -> original units: probabilities (classification) or y * std + mean (regression)."""
    raw = raw.detach().float().cpu()
    if targets[0].task_type == "classification":
        return torch.sigmoid(raw).numpy()
    mean = raw.new_tensor([t.mean for t in targets])
    std = raw.new_tensor([t.std for t in targets])
    return (raw * std + mean).numpy()


def inference_options(featurization: dict, model_cfg, uses_3d: bool, conformer_seed: int = 0) -> FeaturizeOptions:
    """How new molecules are featurized for a model: as its training data was (hydrogens,
    largest fragment, atom limit, capped by the model's size), with one RDKit conformer when
    the input is 3D."""
    max_atoms = int(featurization.get("max_atoms") or 0)
    model_max = int(model_cfg.max_positions)
    return FeaturizeOptions(
        with_hydrogens=bool(featurization.get("with_hydrogens", False)),
        num_conformers=1 if uses_3d else 0,
        conformer_timeout_s=float(featurization.get("conformer_timeout_s", 10.0)),
        # A 3D model cannot use 2D depiction coordinates: such a molecule is an error row.
        on_conformer_failure="reject",
        max_atoms=min(max_atoms, model_max) if max_atoms else model_max,
        largest_fragment=bool(featurization.get("largest_fragment", False)),
        seed=int(conformer_seed),
    )


def featurize_input(molecule: Molecule, options: FeaturizeOptions, index: int = 0) -> MoleculeRecord:
    """One input molecule's record, as in training; raises RejectedMolecule."""
    if not isinstance(molecule, (str, Chem.Mol)):
        raise TypeError(f"input {index}: expected a SMILES string or an RDKit Mol, got {type(molecule).__name__}")
    # A molecule that holds a 3D conformer (e.g. from an SDF) brings its own geometry,
    # as in data_prep; others get RDKit conformers (3D models). The conformer seed
    # depends on the molecule only, not on its place in the input.
    geometry = source_geometry_of(molecule) if isinstance(molecule, Chem.Mol) else None
    return make_record(molecule, options, id=str(index), geometry=geometry)


def featurized_batches(molecules: Sequence[Molecule], options: FeaturizeOptions, uses_3d: bool, batch_size: int,
                       errors: List[str]):
    """(rows, records, collated batch) for each batch of `molecules` that holds a usable
    molecule; a rejected molecule's reason goes into errors[row] instead."""
    for start in range(0, len(molecules), batch_size):
        rows, records = [], []
        for index in range(start, min(start + batch_size, len(molecules))):
            try:
                records.append(featurize_input(molecules[index], options, index))
            except RejectedMolecule as rejected:
                errors[index] = str(rejected)
                continue
            rows.append(index)
        if records:
            yield rows, records, collate_molecules([molecule_inputs(r, 0 if uses_3d else None) for r in records])


class MoleBlendPredictor:
    """Property predictions and embeddings of SMILES strings or RDKit molecules.

    Build it with `from_checkpoint`. `predict`, `embed` and `run` take a sequence of SMILES
    strings and/or sanitized RDKit molecules and return one row per input, in input order.
    """

    def __init__(self, checkpoint: FinetunedCheckpoint, batch_size: int = 64,
                 device: Union[str, torch.device] = "cpu", conformer_seed: int = 0):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.targets = checkpoint.targets
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.uses_3d = needs_coordinates(str(self.model.cfg.input_modality))
        self.options = inference_options(checkpoint.featurization, self.model.cfg, self.uses_3d, conformer_seed)

    @classmethod
    def from_checkpoint(cls, path: str, batch_size: int = 64, device: Union[str, torch.device] = "cpu",
                        conformer_seed: int = 0) -> "MoleBlendPredictor":
        """Load a `moleblend_finetune` checkpoint (e.g. checkpoint_best.pt); weights-only loading."""
        return cls(load_finetuned(path, device), batch_size, device, conformer_seed)

    @property
    def target_names(self) -> List[str]:
        return [t.name for t in self.targets]

    @property
    def task_type(self) -> str:
        return self.checkpoint.task_type

    @property
    def embedding_dim(self) -> int:
        return int(self.model.cfg.encoder_embed_dim)

    def featurize(self, molecule: Molecule, index: int = 0) -> MoleculeRecord:
        """One molecule's record, as in training; raises RejectedMolecule."""
        return featurize_input(molecule, self.options, index)

    def predict(self, molecules: Sequence[Molecule], progress: bool = False) -> Output:
        """[n, num_targets] predictions in original units (probabilities for classification)."""
        result = self.run(molecules, progress)
        return Output(result.predictions, result.errors)

    def embed(self, molecules: Sequence[Molecule], progress: bool = False) -> Output:
        """[n, hidden size] molecule representations (the model's readout: graph token or atom mean)."""
        result = self.run(molecules, progress)
        return Output(result.embeddings, result.errors)

    @torch.no_grad()
    def run(self, molecules: Sequence[Molecule], progress: bool = False) -> Outputs:
        """Predictions and embeddings in one pass; errors[i] is "" for a molecule that was used."""
        from tqdm import tqdm

        molecules = list(molecules)
        n = len(molecules)
        predictions = np.full((n, len(self.targets)), np.nan, dtype=np.float32)
        embeddings = np.full((n, self.embedding_dim), np.nan, dtype=np.float32)
        errors = [""] * n
        # a bar only on a terminal: redirected, its carriage-return frames would fill the log
        bar = tqdm(total=n, unit="mol", disable=not progress or n < PROGRESS_MIN_MOLECULES or not sys.stderr.isatty())
        for rows, _, collated in featurized_batches(molecules, self.options, self.uses_3d, self.batch_size, errors):
            batch = {k: v.to(self.device) for k, v in collated.items()}
            output = self.model(batch)
            predictions[rows] = prediction_values(output["prediction"], self.targets)
            embeddings[rows] = output["graph_state"].float().cpu().numpy()
            bar.update(rows[-1] + 1 - bar.n)
        bar.update(n - bar.n)
        bar.close()
        return Outputs(predictions, embeddings, errors)
