"""How well a pretrained model recovers the relations the blend hid from it.

    python -m moleblend_plugin.relation_recovery CHECKPOINT --data DIR [--split valid]

Runs a `moleblend_pretrain` checkpoint on a split with the blend of its training (so each
pair's input came from one modality) and scores every pair's SPD class, bond features
along the path and distance, overall and on the pairs whose input was another modality
("hidden"), next to trivial baselines fitted on the train split: the majority SPD class,
the majority bond features per hop, the mean distance, and the mean distance per true
SPD (a baseline that is handed the 2D truth).
"""
import argparse
import json
import sys
from collections import Counter, defaultdict

import torch
from tqdm import tqdm

from .checkpoints.safe_loading import load_checkpoint_file
from .criterions.relation_targets import off_diagonal_pairs, relative_positions, spd_classes, split_bond_logits
from moleblend_data.featurize import check_featurization_version
from .data.molecule_dataset import MoleculeDataset
from moleblend_data.shards import MoleculeShards
from .errors import UserError, run_command
from .inference import model_config
from .models.moleblend import MoleBlendEncoder, MoleBlendModel
from .seeding import seeded_for_batch

MODALITIES = ("spd", "edge", "distance")


def load_pretrained(path: str) -> MoleBlendModel:
    state = load_checkpoint_file(path)
    cfg = state.get("cfg") or {}
    if cfg.get("task", {}).get("_name") != "moleblend_pretrain":
        raise UserError(f"{path} is not a pretraining (moleblend_pretrain) checkpoint")
    model_cfg = model_config(cfg["model"])
    model = MoleBlendModel(model_cfg, MoleBlendEncoder(model_cfg, 0, pretraining=True))
    torch.nn.Module.load_state_dict(model, state["model"], strict=True)
    return model.eval()


def _batches(dataset, batch_size, limit):
    count = len(dataset) if not limit else min(limit, len(dataset))
    for start in range(0, count, batch_size):
        yield dataset.collater([dataset[i] for i in range(start, min(start + batch_size, count))])


def fit_baselines(dataset, max_spd_class, hops, limit=2000):
    """Majority classes and mean distances over (up to `limit`) train molecules."""
    spd_counts, bond_counts = Counter(), [Counter() for _ in range(3)]
    distance_sum, distance_n = defaultdict(float), defaultdict(int)
    for sample in _batches(dataset, 256, limit):
        batch = sample["net_input"]["batch"]
        pairs = off_diagonal_pairs(batch["atom_mask"])
        spd = spd_classes(batch["spd"], max_spd_class)[pairs]
        spd_counts.update(spd.tolist())
        path = batch["edge_path"][:, :, :, :hops][pairs]
        bonds = path[path[..., 0] >= 0]
        for f in range(3):
            bond_counts[f].update(bonds[:, f].tolist())
        pairs_3d = pairs & batch["has_3d"][:, None, None]
        distance = relative_positions(batch["coordinates"]).norm(dim=-1)[pairs_3d]
        for c, d in zip(spd_classes(batch["spd"], max_spd_class)[pairs_3d].tolist(), distance.tolist()):
            distance_sum[c] += d
            distance_n[c] += 1
    total_distance = sum(distance_sum.values()) / max(sum(distance_n.values()), 1)
    return {
        "spd_majority": spd_counts.most_common(1)[0][0],
        "bond_majority": [c.most_common(1)[0][0] for c in bond_counts],
        "mean_distance": total_distance,
        "mean_distance_by_spd": {c: distance_sum[c] / distance_n[c] for c in distance_n},
    }


class _Tally:
    def __init__(self):
        self.sums = defaultdict(float)
        self.counts = defaultdict(int)

    def add(self, key, values: torch.Tensor):
        self.sums[key] += float(values.float().sum())
        self.counts[key] += int(values.numel())

    def mean(self, key):
        return self.sums[key] / self.counts[key] if self.counts[key] else float("nan")


@torch.no_grad()
def score(model, dataset, baselines, batch_size=256, limit=0, seed=0):
    encoder, cfg = model.encoder, model.cfg
    tally = _Tally()
    bond_majority = torch.tensor(baselines["bond_majority"])
    by_spd = baselines["mean_distance_by_spd"]
    for sample in tqdm(list(_batches(dataset, batch_size, limit)), desc="scoring", leave=False):
        batch = sample["net_input"]["batch"]
        with seeded_for_batch(seed, sample["id"]):  # the blend and the noise, as in validation
            out = encoder.pretrain(batch)
        pairs = off_diagonal_pairs(batch["atom_mask"])
        relations = out["relations"]
        input_of = {m: getattr(relations, m) for m in MODALITIES if getattr(relations, m) is not None}
        target_spd = spd_classes(batch["spd"], cfg.max_spd_class)
        groups = {"all": pairs}
        for m, weight in input_of.items():
            groups[f"input_{m}"] = pairs & (weight > 0)

        def hidden(m):
            return pairs & ~(input_of[m] > 0) if m in input_of else pairs

        if "spd_logits" in out:
            correct = out["spd_logits"].argmax(-1) == target_spd
            tally.add("spd_acc/all", correct[pairs])
            tally.add("spd_acc/hidden", correct[hidden("spd")])
            tally.add("spd_acc/baseline_majority", (target_spd == baselines["spd_majority"])[pairs])
        if "edge_logits" in out:
            hops = out["edge_logits"].shape[3]
            path = batch["edge_path"][:, :, :, :hops]
            valid = path[..., 0] >= 0
            hit = torch.ones_like(valid)
            for f, logits in enumerate(split_bond_logits(out["edge_logits"])):
                hit &= logits.argmax(-1) == path[..., f]
            majority = (path == bond_majority).all(-1)
            tally.add("edge_acc/all", hit[valid & pairs[..., None]])
            tally.add("edge_acc/hidden", hit[valid & hidden("edge")[..., None]])
            tally.add("edge_acc/baseline_majority", majority[valid & pairs[..., None]])
        if "distance_pred" in out and out["distance_pred"].dim() == 3:
            pairs_3d = pairs & batch["has_3d"][:, None, None]
            distance = relative_positions(batch["coordinates"]).norm(dim=-1)
            error = (out["distance_pred"] - distance).abs()
            tally.add("distance_mae/all", error[pairs_3d])
            tally.add("distance_mae/hidden", error[pairs_3d & hidden("distance")])
            tally.add("distance_mae/baseline_mean", (distance - baselines["mean_distance"]).abs()[pairs_3d])
            spd_mean = torch.tensor([by_spd.get(c, baselines["mean_distance"]) for c in range(cfg.max_spd_class + 1)])
            tally.add("distance_mae/baseline_mean_by_true_spd", (distance - spd_mean[target_spd]).abs()[pairs_3d])
        if "noise_pred" in out:
            atoms = batch["atom_mask"] & batch["has_3d"][:, None]
            cosine = torch.nn.functional.cosine_similarity(out["noise_pred"][atoms], out["noise"][atoms], dim=-1)
            tally.add("noise_cosine/all", cosine)
    return {key: tally.mean(key) for key in sorted(tally.sums)}, {key: tally.counts[key] for key in sorted(tally.counts)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m moleblend_plugin.relation_recovery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a moleblend_pretrain checkpoint (e.g. checkpoint_best.pt)")
    parser.add_argument("--data", required=True, help="prepared dataset folder")
    parser.add_argument("--split", default="valid", help="split to score (default valid)")
    parser.add_argument("--batch-size", type=int, default=256, help="molecules per batch")
    parser.add_argument("--max-molecules", type=int, default=0, help="score only the first N molecules (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the blend and the noise")
    parser.add_argument("--output", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    model = load_pretrained(args.checkpoint)
    train = MoleculeShards(args.data, "train")
    check_featurization_version(train.manifest, args.data)
    baselines = fit_baselines(MoleculeDataset(train, train.num_atoms, conformers="first", shuffle=False),
                              model.cfg.max_spd_class, model.cfg.multi_hop_max_dist)
    shards = MoleculeShards(args.data, args.split)
    dataset = MoleculeDataset(shards, shards.num_atoms, conformers="first", shuffle=False)
    metrics, counts = score(model, dataset, baselines, args.batch_size, args.max_molecules, args.seed)
    report = {"checkpoint": args.checkpoint, "split": args.split, "pretrain_mode": str(model.cfg.pretrain_mode),
              "blend_ratio": model.cfg.blend_ratio, "metrics": metrics, "counts": counts}
    print(f"{'metric':45s} {'value':>8s} {'pairs/atoms':>12s}")
    for key, value in metrics.items():
        print(f"{key:45s} {value:8.4f} {counts[key]:12d}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    sys.exit(run_command(main))
