"""Score a fine-tuned checkpoint on one split of a prepared dataset.

    python -m moleblend_plugin.evaluate CHECKPOINT --data DIR --split test [--output scores.json]

The metrics are the ones validation logs during fine-tuning (criterion
`moleblend_finetune`), computed over the whole split at once:
- classification: `auc` (ROC-AUC) and `prc_auc` (average precision), averaged over the
  targets whose labelled molecules hold both classes (OGB's rule; missing labels
  ignored), and `auc_<target>`, `prc_auc_<target>` per target;
- regression, in the targets' original units: `mae`, `rmse` and `r2` over all labelled
  (molecule, target) entries, and `mae_<target>`, `rmse_<target>`, `r2_<target>`;
- a dataset built from OGB's files (`data_prep ogb`): `ogb_<metric>`, OGB's own Evaluator.
For a PCQM4Mv2 HOMO-LUMO gap model, `ogb_pcqm4mv2_mae` is OGB's own
`PCQM4Mv2Evaluator` on the same predictions (eV). Molecules are read as validation reads
them: the first stored conformer, targets taken by name from the dataset's manifest.
"""
import argparse
import csv
import json
import logging
import sys
from typing import Dict, List, Optional

import numpy as np
import torch

from .criterions.property_metrics import split_scores
from moleblend_data.featurize import check_featurization_version
from .data.molecule_dataset import MoleculeDataset
from moleblend_data.shards import MoleculeShards
from .errors import UserError, run_command
from .inference import FinetunedCheckpoint, load_finetuned, prediction_values
from .model_run_options import add_model_run_arguments, start_command
from .models.moleblend import needs_coordinates

logger = logging.getLogger(__name__)

PCQM4MV2_TARGET = "homolumogap"


def score_predictions(task_type: str, labels: np.ndarray, predictions: np.ndarray,
                      names: List[str], ogb: Optional[dict] = None) -> Dict[str, Optional[float]]:
    """Validation's metrics of a whole split (property_metrics.split_scores)."""
    return split_scores(task_type, labels, predictions, names, ogb)


def pcqm4mv2_mae(labels: np.ndarray, predictions: np.ndarray) -> Optional[float]:
    """OGB's PCQM4Mv2Evaluator MAE over the labelled molecules; None without ogb.lsc or labels."""
    try:
        from ogb.lsc import PCQM4Mv2Evaluator
    except ImportError as error:
        logger.warning("ogb.lsc is not importable (%s): no PCQM4Mv2Evaluator score", error)
        return None
    labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    labelled = ~np.isnan(labels)
    if not labelled.any():
        return None
    result = PCQM4Mv2Evaluator().eval({"y_pred": predictions[labelled].astype(np.float64),
                                       "y_true": labels[labelled].astype(np.float64)})
    return float(result["mae"])


def split_dataset(checkpoint: FinetunedCheckpoint, data: str, split: str) -> MoleculeDataset:
    """The split as validation reads it, with the checkpoint's targets picked by name."""
    shards = MoleculeShards(data, split)
    check_featurization_version(shards.manifest, data)
    available = [t["name"] for t in shards.manifest["targets"]]
    missing = [t.name for t in checkpoint.targets if t.name not in available]
    if missing:
        raise ValueError(f"{data} has no target(s) {missing} that the checkpoint predicts; it has {available}")
    uses_3d = needs_coordinates(str(checkpoint.model.cfg.input_modality))
    dataset = MoleculeDataset(shards, shards.num_atoms, conformers="first" if uses_3d else "none", shuffle=False)
    dataset.target_columns = np.array([available.index(t.name) for t in checkpoint.targets], dtype=np.int64)
    return dataset


@torch.no_grad()
def predict_split(checkpoint: FinetunedCheckpoint, dataset: MoleculeDataset, batch_size: int,
                  device="cpu", progress: bool = False):
    """(ids, smiles, labels [n, T], predictions [n, T] in original units) in dataset order."""
    from tqdm import tqdm

    ids, smiles, labels, predictions = [], [], [], []
    for start in tqdm(range(0, len(dataset), batch_size), disable=not progress or not sys.stderr.isatty(), unit="batch"):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        sample = dataset.collater(items)
        batch = {k: v.to(device) for k, v in sample["net_input"]["batch"].items()}
        output = checkpoint.model(batch)
        predictions.append(prediction_values(output["prediction"], checkpoint.targets))
        labels.append(sample["net_input"]["batch"]["targets"].numpy())
        ids.extend(sample["molecule_ids"])
        smiles.extend(dataset.shards[i].smiles for i in range(start, start + len(items)))
    width = len(checkpoint.targets)
    if not labels:
        return ids, smiles, np.zeros((0, width), np.float32), np.zeros((0, width), np.float32)
    return ids, smiles, np.concatenate(labels), np.concatenate(predictions)


def evaluate(checkpoint_path: str, data: str, split: str = "test", batch_size: int = 64, device: str = "cpu",
             predictions_csv: str = "", progress: bool = False) -> dict:
    """Scores of a checkpoint on a split, as the JSON-ready dict the command prints."""
    checkpoint = load_finetuned(checkpoint_path, device)
    dataset = split_dataset(checkpoint, data, split)
    if len(dataset) == 0:
        raise UserError(f"split {split!r} of {data} holds no molecules: nothing to evaluate")
    ids, smiles, labels, predictions = predict_split(checkpoint, dataset, batch_size, device, progress)
    names = [t.name for t in checkpoint.targets]
    ogb = dataset.shards.manifest.get("source", {}).get("ogb")
    metrics = score_predictions(checkpoint.task_type, labels, predictions, names, ogb)
    if checkpoint.source_type == "pcqm4mv2" and names == [PCQM4MV2_TARGET]:
        metrics["ogb_pcqm4mv2_mae"] = pcqm4mv2_mae(labels, predictions)
    if predictions_csv:
        write_split_predictions(predictions_csv, ids, smiles, labels, predictions, names)
    return {
        "checkpoint": checkpoint_path,
        "data": data,
        "split": split,
        "num_molecules": len(dataset),
        "task_type": checkpoint.task_type,
        "input_modality": str(checkpoint.model.cfg.input_modality),
        "targets": [{"name": t.name, "unit": t.unit, "labels": int((~np.isnan(labels[:, k])).sum())}
                    for k, t in enumerate(checkpoint.targets)],
        "metrics": metrics,
    }


def write_split_predictions(path, ids, smiles, labels, predictions, names) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "smiles"] + [f"{n}_label" for n in names] + [f"{n}_prediction" for n in names])
        for k in range(len(ids)):
            cells = ["" if np.isnan(v) else repr(float(v)) for v in labels[k]]
            writer.writerow([ids[k], smiles[k]] + cells + [repr(float(v)) for v in predictions[k]])


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m moleblend_plugin.evaluate",
        description="Score a fine-tuned MoleBlend checkpoint (e.g. checkpoint_best.pt) on a split of a prepared "
                    "dataset with the metrics of validation; prints JSON.")
    parser.add_argument("checkpoint", help="checkpoint of a moleblend_finetune run")
    parser.add_argument("--data", required=True, help="prepared dataset folder (from python -m data_prep)")
    parser.add_argument("--split", default="test", help="split to score: train, valid or test (default test)")
    add_model_run_arguments(parser, conformers=False)
    parser.add_argument("--output", default="", help="also write the JSON to this file")
    parser.add_argument("--predictions", default="", help="also write each molecule's labels and predictions "
                                                          "(original units) to this CSV")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    device = start_command(args.device, logging.INFO)
    result = evaluate(args.checkpoint, args.data, args.split, args.batch_size, device, args.predictions,
                      progress=not args.quiet)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
