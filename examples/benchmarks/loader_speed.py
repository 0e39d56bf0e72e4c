"""Data loading per loader worker against the model's consumption, side by side in one run.

    python examples/benchmarks/loader_speed.py [--data DIR] [--molecules 1000] [--threads 2]

Prints, on MOSES molecules with one RDKit conformer each:
- loader: molecules/s of one loader worker (one process) producing the training batches of
  moleblend_base (32 molecules) as fairseq-train does: the pretraining task's train
  split and fairseq's batch iterator, with no worker processes, so that this process does
  what one worker does (LMDB read, record decoding, pair relations and the other model
  inputs, collation); the median of several epochs, half of them before and half after
  the model's steps, and, apart, collation alone;
- model: molecules/s of a moleblend_base pretraining step (forward, losses, backward, Adam)
  on batches of that loader, measured as examples/benchmarks/pretraining_speed.py does;
- their ratio: how many molecules one worker prepares in the time the model trains on one.
Without --data, a dataset of the first --molecules MOSES molecules is prepared in a
temporary folder first (`data_prep csv`, 1 conformer each; about a minute).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from data_prep.__main__ import main as data_prep_main  # noqa: E402
from moleblend_plugin.tasks.pretrain import PretrainConfig, PretrainTask  # noqa: E402
from pretraining_speed import ARCHS, build, default_data_dir, step_seconds  # noqa: E402

ARCH = "moleblend_base"


def prepare_moses(moses: str, count: int, output: str) -> None:
    code = data_prep_main(["csv", "--input", moses, "--smiles-column", "SMILES", "--output", output,
                           "--conformers", "1", "--limit", str(count), "--quiet"])
    if code != 0:
        raise SystemExit(f"data_prep stopped with exit code {code}")


def training_batches(task, batch_size: int, epoch: int):
    """The train split's batches of one epoch, as fairseq-train iterates them (no workers)."""
    dataset = task.datasets["train"]
    iterator = task.get_batch_iterator(dataset, max_sentences=batch_size, max_positions=task.max_positions(),
                                       seed=task.cfg.seed, epoch=epoch, num_workers=0,
                                       disable_iterator_cache=True)
    return iterator.next_epoch_itr(shuffle=True)


def loader_rates(task, batch_size: int, epochs) -> tuple[list[float], list[float]]:
    """(molecules/s of the whole loader, molecules/s of collation alone), one per epoch."""
    dataset = task.datasets["train"]
    whole, collation = [], []
    for epoch in epochs:
        molecules, start = 0, time.perf_counter()
        for sample in training_batches(task, batch_size, epoch):
            molecules += sample["nsentences"]
        whole.append(molecules / (time.perf_counter() - start))
        # Collation apart: the same items, collated again in batches of batch_size.
        items = [dataset[i] for i in range(len(dataset))]
        start = time.perf_counter()
        for i in range(0, len(items), batch_size):
            dataset.collater(items[i:i + batch_size])
        collation.append(len(items) / (time.perf_counter() - start))
    return whole, collation


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = default_data_dir()
    parser.add_argument("--data", help="a prepared dataset (data_prep output) to read instead of a new MOSES one")
    parser.add_argument("--moses", default=os.path.join(default_data, "moses", "train.csv.gz"),
                        help="MOSES SMILES as laid out by shared/datasets/fetch.sh (default: $MOLEBLEND_DATA/moses/train.csv.gz)")
    parser.add_argument("--molecules", type=int, default=1000, help="MOSES molecules to prepare without --data")
    parser.add_argument("--epochs", type=int, default=6, help="loader passes over the train split")
    parser.add_argument("--steps", type=int, default=6, help="model steps measured (distinct loader batches)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of the model step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides, batch_size = ARCHS[ARCH]

    with tempfile.TemporaryDirectory() as scratch:
        data = args.data
        if data is None:
            data = os.path.join(scratch, "moses")
            prepare_moses(args.moses, args.molecules, data)
        task = PretrainTask(PretrainConfig(data=data, seed=1))
        task.load_dataset("train")
        sizes = task.datasets["train"].sizes
        print(f"{data}: {len(sizes)} train molecules, {sizes.mean():.1f} atoms on average (max {sizes.max()}); "
              f"torch {torch.__version__}, model {args.threads} threads, loader 1 process")

        before, collation_before = loader_rates(task, batch_size, range(1, args.epochs // 2 + 1))
        batches = [sample["net_input"]["batch"] for _, sample in zip(range(args.steps),
                                                                      training_batches(task, batch_size, 1))]
        seconds = step_seconds(build(overrides), batches, repeats=1)
        model = batch_size / seconds
        after, collation_after = loader_rates(task, batch_size, range(args.epochs // 2 + 1, args.epochs + 1))
        loader, collation = statistics.median(before + after), statistics.median(collation_before + collation_after)

    print(f"loader, 1 worker: {loader:.0f} molecules/s (LMDB read, decoding, model inputs, collation; "
          f"batches of {batch_size}; epochs {', '.join(f'{r:.0f}' for r in before + after)})")
    print(f"  collation alone: {collation:.0f} molecules/s")
    print(f"{ARCH} pretraining step: {model:.1f} molecules/s (batch {batch_size}: forward, losses, backward, "
          f"Adam; mean step over the batches {seconds * 1e3:.0f} ms)")
    print(f"loader per worker / model step: {loader / model:.0f}x")


if __name__ == "__main__":
    main()
