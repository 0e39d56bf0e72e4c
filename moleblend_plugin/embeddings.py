"""Molecule and atom embeddings from any MoleBlend checkpoint, pretrained or fine-tuned.

    from moleblend_plugin.embeddings import MoleculeEmbedder

    embedder = MoleculeEmbedder.from_checkpoint("pretrain/checkpoint_best.pt", input_modality="2d")
    result = embedder.embed(["CCO", "c1ccccc1O"], atoms=True)
    result.graph_token   # [2, hidden] state of the graph token
    result.atom_mean     # [2, hidden] mean of the atom states
    result.atoms[1]      # [7, hidden] one row per graph atom, in the input's atom order
    result.atomic_numbers[1]  # [7] the element of each row

Graph atoms are the input's atoms in RDKit's reading order; with a heavy-atom checkpoint
the hydrogens are left out (except those that fix a double bond's E/Z, as in training),
the other atoms keeping their relative order. Rows come back in input order; a molecule that cannot be featurized keeps a NaN row (and
`atoms[i]` is None) with the reason in `errors[i]`. The encoder sees the relations of
`input_modality`: 2d (shortest-path and bond-path biases), 3d (distances) or 2d+3d; a
model fine-tuned with 2d+predicted3d embeds with its own input (its frozen distance
predictor's distances, no conformers).
For 3D input, a molecule read from an SDF (an RDKit Mol with a 3D conformer) brings its
own geometry; SMILES get one RDKit conformer (ETKDG + MMFF, seeded by the molecule).
Molecules are featurized with the options of the checkpoint's training data (hydrogens,
largest fragment), stored in the checkpoint or read from its dataset's manifest.
"""
from __future__ import annotations

import logging
import os
from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from rdkit import Chem

from .errors import UserError
from .inference import featurized_batches, inference_options, load_task_checkpoint, model_config
from .models.moleblend import INPUT_MODALITIES, PREDICTED_3D, MoleBlendEncoder, MoleBlendModel, needs_coordinates
from .modules import relation_mixing as mixing
from moleblend_data.shards import read_manifest

logger = logging.getLogger(__name__)

Molecule = Union[str, Chem.Mol]
TASKS = ("moleblend_pretrain", "moleblend_finetune")


class Embeddings(NamedTuple):
    graph_token: np.ndarray  # [n, hidden], NaN rows for errors
    atom_mean: np.ndarray  # [n, hidden]
    atoms: Optional[List[Optional[np.ndarray]]]  # per molecule [atoms, hidden]; None unless asked for
    atomic_numbers: Optional[List[Optional[np.ndarray]]]  # per molecule [atoms], the rows of `atoms`
    errors: List[str]  # "" where the molecule was used


def stored_featurization(state: dict, cfg: dict, path: str) -> dict:
    """The featurization options a checkpoint was trained with: its task state, else the
    manifest of its dataset, else the defaults (heavy atoms, whole molecule), said in the log."""
    stored = (state.get("task_state") or {}).get("featurization")
    if stored:
        return dict(stored)
    data = str(cfg["task"].get("data", ""))
    if data and os.path.exists(os.path.join(data, "manifest.json")):
        return dict(read_manifest(data).get("featurization", {}))
    logger.warning("%s stores no featurization options and its dataset %r is not here: heavy atoms only, "
                   "whole molecules", path, data)
    return {}


def load_model(path: str, device: Union[str, torch.device] = "cpu"):
    """(model, featurization) of a `moleblend_pretrain` or `moleblend_finetune` checkpoint, weights loaded exactly."""
    state, cfg = load_task_checkpoint(path, TASKS, f"embeddings need a MoleBlend checkpoint ({' or '.join(TASKS)}); "
                                                   "map Graphormer or Transformer-M weights first (docs/checkpoints.md)")
    task = cfg["task"]["_name"]
    model_cfg = model_config(cfg["model"])
    pretraining = task == "moleblend_pretrain"
    num_targets = 0 if pretraining else len(((state.get("task_state") or {}).get("targets")) or [])
    if not pretraining and not num_targets:
        num_targets = state["model"]["encoder.head.embed_out.weight"].shape[0]
    model = MoleBlendModel(model_cfg, MoleBlendEncoder(model_cfg, num_targets, pretraining=pretraining))
    torch.nn.Module.load_state_dict(model, state["model"], strict=True)
    model.to(device).eval()
    return model, stored_featurization(state, cfg, path)


class MoleculeEmbedder:
    """Graph-token, atom-mean and per-atom states of the encoder of a checkpoint."""

    def __init__(self, model: MoleBlendModel, featurization: dict, input_modality: str = "",
                 batch_size: int = 64, device: Union[str, torch.device] = "cpu", conformer_seed: int = 0):
        self.model = model
        self.encoder = model.encoder.molecule_encoder
        self.input_modality = input_modality or str(model.cfg.input_modality)
        if self.input_modality not in INPUT_MODALITIES:
            raise UserError(f"input modality {self.input_modality!r}: choose one of {', '.join(INPUT_MODALITIES)}")
        self.modalities = INPUT_MODALITIES[self.input_modality]
        self.distance_predictor = getattr(model.encoder, "distance_predictor", None)
        if self.input_modality == PREDICTED_3D and self.distance_predictor is None:
            raise UserError(f"input modality {PREDICTED_3D} needs a model fine-tuned with it (its distance predictor); "
                            "choose 2d, 3d or 2d+3d for this checkpoint")
        self.uses_3d = needs_coordinates(self.input_modality)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.options = inference_options(featurization, model.cfg, self.uses_3d, conformer_seed)

    @classmethod
    def from_checkpoint(cls, path: str, input_modality: str = "", batch_size: int = 64,
                        device: Union[str, torch.device] = "cpu", conformer_seed: int = 0) -> "MoleculeEmbedder":
        """input_modality: 2d, 3d or 2d+3d (default: a fine-tuned model's own; 2d for pretrained ones,
        whose pretraining saw every modality)."""
        model, featurization = load_model(path, device)
        return cls(model, featurization, input_modality, batch_size, device, conformer_seed)

    @property
    def dim(self) -> int:
        return int(self.model.cfg.encoder_embed_dim)

    @torch.no_grad()
    def embed(self, molecules: Sequence[Molecule], atoms: bool = False) -> Embeddings:
        molecules = list(molecules)
        n = len(molecules)
        graph = np.full((n, self.dim), np.nan, dtype=np.float32)
        mean = np.full((n, self.dim), np.nan, dtype=np.float32)
        per_atom: Optional[List[Optional[np.ndarray]]] = [None] * n if atoms else None
        elements: Optional[List[Optional[np.ndarray]]] = [None] * n if atoms else None
        errors = [""] * n
        for rows, records, collated in featurized_batches(molecules, self.options, self.uses_3d, self.batch_size,
                                                          errors):
            batch = {k: v.to(self.device) for k, v in collated.items()}
            atom_mask = batch["atom_mask"]
            pair_mask = atom_mask[:, :, None] & atom_mask[:, None, :]
            distances = self.distance_predictor(batch) if self.input_modality == PREDICTED_3D else None
            out = self.encoder(batch, mixing.whole_modalities(pair_mask, self.modalities), distances=distances)
            states = out.atom_states.float()
            weights = atom_mask[..., None].float()
            graph[rows] = out.graph_state.float().cpu().numpy()
            mean[rows] = ((states * weights).sum(1) / weights.sum(1).clamp(min=1)).cpu().numpy()
            if per_atom is not None:
                for k, (row, record) in enumerate(zip(rows, records)):
                    per_atom[row] = states[k, :record.num_atoms].cpu().numpy()
                    elements[row] = np.asarray(record.atomic_numbers, dtype=np.int64)
        return Embeddings(graph, mean, per_atom, elements, errors)


def save_embeddings(path: str, ids: Sequence[str], smiles: Sequence[str], result: Embeddings) -> None:
    """One .npz: ids, smiles, error, graph_token, atom_mean; with atoms, `atoms` (all atoms of
    the used molecules stacked), `atomic_numbers` (their elements) and `atom_offsets`
    (molecule i's atoms are atoms[atom_offsets[i]:atom_offsets[i + 1]]; none for a molecule
    with an error)."""
    arrays = {"ids": np.asarray(list(ids), dtype=str), "smiles": np.asarray(list(smiles), dtype=str),
              "error": np.asarray(result.errors, dtype=str),
              "graph_token": result.graph_token, "atom_mean": result.atom_mean}
    if result.atoms is not None:
        blocks = [a if a is not None else np.zeros((0, result.graph_token.shape[1]), np.float32) for a in result.atoms]
        arrays["atom_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blocks])]).astype(np.int64)
        arrays["atoms"] = np.concatenate(blocks) if blocks else np.zeros((0, result.graph_token.shape[1]), np.float32)
        arrays["atomic_numbers"] = np.concatenate(
            [a if a is not None else np.zeros(0, np.int64) for a in result.atomic_numbers] or [np.zeros(0, np.int64)])
    np.savez(path, **arrays)
