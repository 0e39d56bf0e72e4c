"""The ogb source: OGB's molecule benchmarks in OGB's raw layout, with OGB's split used
exactly, labels aligned to their rows, and task type and metric from OGB's master.csv."""
import csv
import gzip
import importlib.resources
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from data_prep.__main__ import main
from data_prep.rejects import read_rejects
from data_prep.sources import ogb_datasets
from moleblend_data.shards import MoleculeShards

OGB = os.path.join(os.path.dirname(__file__), "fixtures", "ogb")


def build(name, out, root=OGB):
    return main(["ogb", "--name", name, "--root", str(root), "--output", str(out), "--conformers", "0", "--quiet"])


def official_split(folder):
    """graph index -> split, read as OGB's get_idx_split reads the files."""
    owner = {}
    for name in ("train", "valid", "test"):
        indices = pd.read_csv(os.path.join(folder, "split", "scaffold", f"{name}.csv.gz"),
                              compression="gzip", header=None).values.T[0]
        owner.update({int(i): name for i in indices})
    return owner


def test_every_record_is_in_its_official_split_with_its_labels(tmp_path):
    out = tmp_path / "hiv"
    assert build("ogbg-molhiv", out) == 0
    folder = os.path.join(OGB, "ogbg_molhiv")
    owner = official_split(folder)
    table = pd.read_csv(os.path.join(folder, "mapping", "mol.csv.gz"))
    manifest = MoleculeShards(str(out)).manifest
    rejected = [r["row"] for r in read_rejects(str(out))]
    assert manifest["rejected_by_reason"] == {"invalid_smiles": 1} and len(rejected) == 1
    seen = set()
    for name in ("train", "valid", "test"):
        split = MoleculeShards(str(out), name)
        ids = [int(split[i].id) for i in range(len(split))]
        assert sorted(ids) == sorted(i for i, s in owner.items() if s == name and i not in rejected)
        for i in range(len(split)):
            record = split[i]
            index = int(record.id)
            assert record.smiles == table["smiles"][index]
            label = table["HIV_active"][index]
            assert (np.isnan(record.targets[0]) if math.isnan(label) else record.targets[0] == label)
        seen.update(ids)
    assert seen | set(rejected) == set(range(len(table)))
    assert manifest["source"]["ogb"] == {"name": "ogbg-molhiv", "eval_metric": "rocauc"}
    assert [(t["name"], t["task_type"]) for t in manifest["targets"]] == [("HIV_active", "classification")]
    assert manifest["split"] == {"method": "ogb", "folder": "split/scaffold"}
    assert {f["name"] for f in manifest["source"]["files"]} == {"mol.csv.gz", "train.csv.gz", "valid.csv.gz",
                                                                "test.csv.gz"}


def test_the_manifest_names_what_ogbs_evaluator_takes(tmp_path):
    from ogb.graphproppred import Evaluator

    assert build("ogbg-molesol", tmp_path / "esol") == 0
    manifest = MoleculeShards(str(tmp_path / "esol")).manifest
    ogb = manifest["source"]["ogb"]
    assert ogb == {"name": "ogbg-molesol", "eval_metric": "rmse"}
    evaluator = Evaluator(ogb["name"])
    assert evaluator.eval_metric == ogb["eval_metric"] and evaluator.num_tasks == len(manifest["targets"])
    assert manifest["targets"][0]["task_type"] == "regression"
    table = pd.read_csv(os.path.join(OGB, "ogbg_molesol", "mapping", "mol.csv.gz"))
    test = MoleculeShards(str(tmp_path / "esol"), "test")
    assert [test[i].id for i in range(len(test))] == ["4"]
    assert test[0].targets[0] == np.float32(table["measured log solubility in mols per litre"][4])
    result = evaluator.eval({"y_true": test[0].targets.reshape(1, 1), "y_pred": test[0].targets.reshape(1, 1)})
    assert result == {"rmse": 0.0}


def test_datasets_are_those_of_ogbs_master_csv():
    master = pd.read_csv(importlib.resources.files("ogb").joinpath("graphproppred", "master.csv"),
                         index_col=0, keep_default_na=False)
    molecules = [name for name in master if master[name]["data type"] == "mol"]
    datasets = ogb_datasets()
    assert sorted(datasets) == sorted(molecules)
    assert {"ogbg-molhiv", "ogbg-molpcba", "ogbg-molesol", "ogbg-mollipo"} <= set(datasets)
    assert "ogbg-ppa" not in datasets
    for name in molecules:
        assert datasets[name]["num tasks"] == master[name]["num tasks"]
        assert datasets[name]["eval metric"] == master[name]["eval metric"]
    assert datasets["ogbg-molpcba"]["num tasks"] == "128" and datasets["ogbg-molpcba"]["eval metric"] == "ap"


def copy_of_hiv(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(os.path.join(OGB, "ogbg_molhiv"), root / "ogbg_molhiv")
    return root


def rewrite(path, lines):
    with gzip.open(path, "wt") as f:
        f.write("".join(f"{line}\n" for line in lines))


def split_lines(root, name):
    with gzip.open(root / "ogbg_molhiv" / "split" / "scaffold" / f"{name}.csv.gz", "rt") as f:
        return [line.strip() for line in f]


@pytest.mark.parametrize("change, file, message", [
    (lambda test, valid: (test + ["30"], valid), "test.csv.gz", "index 30 is out of range"),
    (lambda test, valid: (test + ["-1"], valid), "test.csv.gz", "index -1 is out of range"),
    (lambda test, valid: (test + [valid[0]], valid), "test.csv.gz", "is also in"),
    (lambda test, valid: (test[1:], valid), "scaffold", "are in no split file"),
    (lambda test, valid: (test + [test[0]], valid), "test.csv.gz", "listed twice"),
    (lambda test, valid: (test[:1] + ["x"] + test[1:], valid), "test.csv.gz line 2", "'x' is not a graph index"),
])
def test_bad_split_files_are_errors_naming_the_file(tmp_path, capsys, change, file, message):
    root = copy_of_hiv(tmp_path)
    test, valid = change(split_lines(root, "test"), split_lines(root, "valid"))
    rewrite(root / "ogbg_molhiv" / "split" / "scaffold" / "test.csv.gz", test)
    assert build("ogbg-molhiv", tmp_path / "out", root) == 2
    error = capsys.readouterr().err.strip()
    assert file in error and message in error and len(error.splitlines()) == 1
    assert not os.path.exists(tmp_path / "out" / "manifest.json")


def test_missing_files_and_wrong_task_columns_are_errors(tmp_path, capsys):
    assert build("ogbg-molpcba", tmp_path / "out") == 2
    assert "ogbg_molpcba/mapping/mol.csv.gz" in capsys.readouterr().err
    root = copy_of_hiv(tmp_path)
    os.remove(root / "ogbg_molhiv" / "split" / "scaffold" / "valid.csv.gz")
    assert build("ogbg-molhiv", tmp_path / "out", root) == 2
    assert "valid.csv.gz not found" in capsys.readouterr().err
    # the ClinTox files have two task columns, the HIV layout one
    assert build("ogbg-molclintox", tmp_path / "out", root / "ogbg_molhiv") == 2
    assert "1 task columns, ogbg-molclintox has 2" in capsys.readouterr().err


def test_a_binary_label_other_than_0_or_1_is_rejected(tmp_path):
    root = copy_of_hiv(tmp_path)
    path = root / "ogbg_molhiv" / "mapping" / "mol.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))
    rows[1 + 3][0] = "2"
    with gzip.open(path, "wt", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    assert build("ogbg-molhiv", tmp_path / "out", root) == 0
    rejects = {r["row"]: r["reason"] for r in read_rejects(str(tmp_path / "out"))}
    assert rejects[3] == "invalid_label"
