"""The data loader against the model it feeds: molecules/s of one loader worker vs one
pretraining step, measured in one run.

A loader worker reads records from the LMDB shards, computes each molecule's pair
relations (SPD, multi-hop edge paths) and collates batches, exactly as `fairseq-train`
does for `--task moleblend_pretrain` (the task's batch iterator, in this process, which
is what one `--num-workers` process does). The model's rate is a full MoleBlend step
(forward, losses, backward, Adam) of `moleblend_base` at batch 32 on batches of the same
molecules. A loader that keeps up needs (worker rate x workers) above the step rate;
the goal is one worker at 10x the step.

    python examples/benchmarks/loader_speed.py [--data PREPARED_DIR | --moses PATH --molecules 2000] [--threads 2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

from pretraining_speed import ARCHS, build, step_seconds
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dataset(moses: str, count: int, out: str) -> str:
    """MOSES' first `count` molecules with one RDKit conformer each, through data_prep."""
    subprocess.run([sys.executable, "-m", "data_prep", "csv", "--input", moses, "--smiles-column", "SMILES",
                    "--output", out, "--limit", str(count), "--conformers", "1", "--on-conformer-failure", "2d",
                    "--workers", str(os.cpu_count() or 1), "--quiet"], check=True, cwd=ROOT)
    return out


def train_batches(data: str, batch_size: int):
    task = PretrainTask(PretrainConfig(data=data, seed=1))
    task.load_dataset("train")
    dataset = task.datasets["train"]
    iterator = task.get_batch_iterator(dataset, max_sentences=batch_size, seed=1, num_workers=0, epoch=1)
    return dataset, iterator


def loader_rate(data: str, batch_size: int, passes: int):
    """Molecules/s over whole epochs of the training iterator (the best of `passes`), and
    a few of its batches for the model."""
    best, kept = 0.0, []
    for epoch in range(1, passes + 1):
        dataset, iterator = train_batches(data, batch_size)
        itr = iterator.next_epoch_itr(shuffle=True)
        start, molecules = time.perf_counter(), 0
        for sample in itr:
            molecules += sample["nsentences"]
            if len(kept) < 4 and sample["nsentences"] == batch_size:
                kept.append(sample["net_input"]["batch"])
        best = max(best, molecules / (time.perf_counter() - start))
    return best, molecules, kept


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = os.environ.get("MOLEBLEND_DATA", os.path.expanduser("~/.cache/moleblend/datasets"))
    parser.add_argument("--data", default="", help="a prepared dataset with 3D (default: build one from --moses)")
    parser.add_argument("--moses", default=os.path.join(default_data, "moses", "train.csv.gz"),
                        help="MOSES SMILES as laid out by scripts/fetch_datasets.sh (default: $MOLEBLEND_DATA/moses/train.csv.gz)")
    parser.add_argument("--molecules", type=int, default=2000, help="MOSES molecules to prepare when --data is not given")
    parser.add_argument("--arch", default="moleblend_base", choices=sorted(ARCHS), help="the model fed")
    parser.add_argument("--passes", type=int, default=2, help="epochs of the loader measured (the best is reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of the model step")
    args = parser.parse_args()

    overrides, batch_size = ARCHS[args.arch]
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or build_dataset(args.moses, args.molecules, os.path.join(scratch, "moses"))
        torch.set_num_threads(1)  # a loader worker is one process on one core
        rate, molecules, batches = loader_rate(data, batch_size, args.passes)
        torch.set_num_threads(args.threads)
        seconds = step_seconds(build(overrides), batches, repeats=2)
    step_rate = batch_size / seconds
    print(f"loader, one worker: {rate:8.0f} molecules/s  (train split, {molecules} molecules an epoch, "
          f"batches of {batch_size}: read, pair relations, collate)")
    print(f"{args.arch} step:    {step_rate:8.1f} molecules/s  ({args.threads} threads, step {seconds * 1e3:.0f} ms)")
    print(f"one worker / step:  {rate / step_rate:8.1f}x")


if __name__ == "__main__":
    main()
