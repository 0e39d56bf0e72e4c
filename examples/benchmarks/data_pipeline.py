"""Throughput and memory of the data pipeline, on the shared MOSES and QM9 data.

    python examples/benchmarks/data_pipeline.py --data DATA_DIR [--quick] [--parts 2d,conformers,memory]
        [--graphormer GRAPHORMER_CHECKOUT]

Prints:
  1. 2D preprocessing, molecules/s of one process without conformers: what data_prep does
     per molecule (RDKit parse, OGB atom and bond features, record encoding) plus the
     pair relations the loader computes from the record (shortest-path distances and
     multi-hop edge paths); the median of three passes over the molecules;
  2. molecules/s for conformer generation (ETKDG + MMFF, 1 conformer) with 1 and 2 workers;
  3. peak RSS of `data_prep csv` builds of 10k and 100k MOSES molecules (2D, 2 workers):
     memory must not grow with the size of the dataset.
With --graphormer (a checkout of github.com/microsoft/Graphormer; needs torch_geometric
and Cython < 3, which its algos.pyx needs), part 1 also runs Graphormer's per-molecule pipeline on the same MOSES
molecules, taking turns with this project's: OGB's `smiles2graph` and Graphormer's
`preprocess_item` (its Cython Floyd-Warshall and edge paths), and checks that both give
the same shortest-path distances.
DATA_DIR is the folder `datasets/fetch.sh` fills (moses/train.csv.gz, qm9/qm9.csv).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import importlib
import importlib.util
import itertools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from rdkit import RDLogger  # noqa: E402

from moleblend_data.conformers import ConformerError, generate_conformers  # noqa: E402
from moleblend_data.featurize import (FeaturizeOptions, RejectedMolecule, make_record,  # noqa: E402
                                             mol_from_smiles)
from moleblend_data.relations import pair_relations  # noqa: E402
from moleblend_data.shards import encode_record  # noqa: E402

PASSES = 3


def moses_smiles(data: str, count: int) -> list[str]:
    with gzip.open(os.path.join(data, "moses", "train.csv.gz"), "rt", newline="") as f:
        return [row["SMILES"] for row in itertools.islice(csv.DictReader(f), count)]


def qm9_smiles(data: str, count: int) -> list[str]:
    with open(os.path.join(data, "qm9", "qm9.csv"), newline="") as f:
        return [row["SMILES"] for row in itertools.islice(csv.DictReader(f), 3, 3 + count)]


def preprocessing_2d_rate(smiles: list[str], passes: int = PASSES) -> float:
    """molecules/s of one process: record (no conformers), its bytes, its pair relations;
    the median over passes."""
    options = FeaturizeOptions(num_conformers=0)
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        for s in smiles:
            try:
                record = make_record(s, options)
            except RejectedMolecule:
                continue
            encode_record(record)
            pair_relations(record.num_atoms, record.bond_index, record.bond_features)
        rates.append(len(smiles) / (time.perf_counter() - start))
    return statistics.median(rates)


def graphormer_preprocess(checkout: str):
    """Graphormer's `preprocess_item`, from graphormer/data/wrapper.py of a checkout, imported
    without the package's __init__ (which registers its models and tasks with fairseq)."""
    data_dir = os.path.join(checkout, "graphormer", "data")
    if not os.path.isfile(os.path.join(data_dir, "wrapper.py")):
        raise SystemExit(f"--graphormer {checkout}: no graphormer/data/wrapper.py there")
    spec = importlib.util.spec_from_file_location("graphormer_data", os.path.join(data_dir, "__init__.py"),
                                                  submodule_search_locations=[data_dir])
    package = importlib.util.module_from_spec(spec)
    sys.modules["graphormer_data"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("graphormer_data.wrapper").preprocess_item


def graphormer_2d_rate(smiles: list[str], preprocess_item) -> tuple[float, list]:
    """molecules/s of Graphormer's per-molecule pipeline (one pass) and its SPD matrices."""
    import torch
    from ogb.utils import smiles2graph

    spds = []
    start = time.perf_counter()
    for s in smiles:
        graph = smiles2graph(s)
        item = types.SimpleNamespace(x=torch.from_numpy(graph["node_feat"]).long(),
                                     edge_index=torch.from_numpy(graph["edge_index"]).long(),
                                     edge_attr=torch.from_numpy(graph["edge_feat"]).long())
        spds.append(preprocess_item(item).spatial_pos)
    return len(smiles) / (time.perf_counter() - start), spds


def compare_with_graphormer(smiles: list[str], checkout: str, rounds: int = 3) -> None:
    """Both pipelines on the same molecules, taking turns, one pass each per round."""
    preprocess_item = graphormer_preprocess(checkout)
    records = {s: _record_or_none(s) for s in smiles}  # also the SPD check's, made once
    readable = [s for s in smiles if records[s] is not None]
    print(f"  Graphormer's pipeline (OGB smiles2graph + preprocess_item) vs this project's, "
          f"{len(readable)} MOSES molecules, taking turns:")
    for round_ in range(1, rounds + 1):
        theirs, spds = graphormer_2d_rate(readable, preprocess_item)
        ours = preprocessing_2d_rate(readable, passes=1)
        print(f"    round {round_}: Graphormer {theirs:6.0f} molecules/s, this project {ours:6.0f}: {ours / theirs:.2f}x")
    different = 0
    for s, spd in zip(readable, spds):
        record = records[s]
        ours = pair_relations(record.num_atoms, record.bond_index, record.bond_features).spd
        different += not (spd.numpy() == ours).all()  # both write 510 for unreachable pairs
    print(f"    shortest-path distances differing from Graphormer's: {different} of {len(readable)} molecules")


def _record_or_none(smiles: str):
    try:
        return make_record(smiles, FeaturizeOptions(num_conformers=0))
    except RejectedMolecule:
        return None


def _one_conformer(smiles: str) -> bool:
    try:
        generate_conformers(mol_from_smiles(smiles), 1, seed=0, timeout_s=10)
        return True
    except (ConformerError, RejectedMolecule):
        return False


def _quiet():
    RDLogger.DisableLog("rdApp.*")


def conformer_rate(smiles: list[str], workers: int) -> float:
    start = time.perf_counter()
    if workers == 1:
        _quiet()
        for s in smiles:
            _one_conformer(s)
    else:
        with multiprocessing.get_context("fork").Pool(workers, _quiet) as pool:
            pool.map(_one_conformer, smiles, chunksize=4)
    return len(smiles) / (time.perf_counter() - start)


MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from data_prep.__main__ import main
start = time.perf_counter()
code = main({argv!r})
seconds = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"code": code, "seconds": seconds, "rss_main_mib": own / 1024, "rss_worker_mib": workers / 1024}}))
"""


def build_rss(data: str, count: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        argv = ["csv", "--input", os.path.join(data, "moses", "train.csv.gz"), "--smiles-column", "SMILES",
                "--output", out, "--conformers", "0", "--limit", str(count), "--workers", str(workers),
                "--quiet"]
        result = subprocess.run([sys.executable, "-c", MEASURE.format(root=ROOT, argv=argv)],
                                capture_output=True, text=True, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder laid out by datasets/fetch.sh")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--parts", default="2d,conformers,memory",
                        help="comma-separated measurements to run (default: all three)")
    parser.add_argument("--graphormer", metavar="CHECKOUT",
                        help="a Graphormer checkout: also time its per-molecule 2D pipeline, taking turns with this one")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    n_2d, n_conf, sizes = (200, 20, (1000, 5000)) if args.quick else (5000, 200, (10_000, 100_000))

    if "2d" in parts:
        print("2D preprocessing, no conformers, 1 process (RDKit parse, OGB features, record encoding, "
              f"SPD and edge paths; median of {PASSES} passes)")
        for name, smiles in (("MOSES", moses_smiles(args.data, n_2d)), ("QM9", qm9_smiles(args.data, n_2d))):
            print(f"  {name:6s} {preprocessing_2d_rate(smiles):8.0f} molecules/s per process  "
                  f"({len(smiles)} molecules)")
        if args.graphormer:
            compare_with_graphormer(moses_smiles(args.data, n_2d), args.graphormer)

    if "conformers" in parts:
        print("conformer generation (ETKDGv3 + MMFF94, 1 conformer per molecule)")
        for name, smiles in (("MOSES", moses_smiles(args.data, n_conf)), ("QM9", qm9_smiles(args.data, n_conf))):
            for workers in (1, 2):
                print(f"  {name:6s} {workers} worker(s) {conformer_rate(smiles, workers):7.1f} molecules/s  "
                      f"({len(smiles)} molecules)")

    if "memory" in parts:
        print("peak RSS of a 2D build (data_prep csv, MOSES, 2 workers)")
        for count in sizes:
            r = build_rss(args.data, count, workers=2)
            print(f"  {count:7d} molecules: main process {r['rss_main_mib']:6.0f} MiB, largest worker "
                  f"{r['rss_worker_mib']:6.0f} MiB, {r['seconds']:6.1f} s ({count / r['seconds']:.0f} molecules/s)")


if __name__ == "__main__":
    main()
