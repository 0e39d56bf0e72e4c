"""Users' own splits for the csv and sdf sources: a split column (property), separate
valid/test files, and k-fold cross-validation on top of any split."""
import csv
import json
import os

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from data_prep.__main__ import main
from data_prep.rejects import read_rejects
from data_prep.splits import SplitPlan, fold_split, murcko_scaffold, split_name
from moleblend_data.shards import MoleculeShards

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SMILES = pd.read_csv(f"{FIXTURES}/molecules.csv")["smiles"].tolist()
INVALID = pd.read_csv(f"{FIXTURES}/bbbp_bad.csv")["smiles"][2]  # a SMILES RDKit rejects


def write_csv(path, rows, header=("smiles", "y", "split")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def build(*args):
    assert main([*args, "--conformers", "0", "--quiet"]) == 0


def split_records(out):
    """split -> records of a built dataset."""
    manifest = MoleculeShards(str(out)).manifest
    result = {}
    for name in manifest["splits"]:
        shards = MoleculeShards(str(out), name)
        result[name] = [shards[i] for i in range(len(shards))]
    return result


def test_split_names_are_read_in_any_case_with_spaces():
    assert [split_name(v) for v in ["train", " Valid", "TEST ", "validation", "", None, "tr ain"]] == \
        ["train", "valid", "test", None, None, None, None]


def test_split_column_puts_every_row_where_its_label_says(tmp_path):
    labels = ["train", " Train", "TEST", "valid ", "train", "Test"]
    rows = [(s, i, labels[i % len(labels)]) for i, s in enumerate(SMILES[:30])]
    rows.insert(7, (INVALID, 99, "test"))  # rejected by featurization, counted as before
    path = write_csv(tmp_path / "mols.csv", rows)
    out = tmp_path / "out"
    build("csv", "--input", path, "--smiles-column", "smiles", "--target-columns", "y",
          "--split-column", "split", "--output", str(out))
    manifest = MoleculeShards(str(out)).manifest
    assert manifest["split"] == {"method": "column", "column": "split"}
    assert manifest["rejected_by_reason"] == {"invalid_smiles": 1}
    assert [r["row"] for r in read_rejects(str(out))] == [7]
    expected = {"train": 15, "valid": 5, "test": 10}
    assert manifest["splits"] == expected
    for name, records in split_records(out).items():
        for record in records:
            smiles, label, given = rows[int(record.id)]
            assert given.strip().lower() == name and record.smiles == smiles
            assert record.targets[0] == label


def test_train_and_test_only_leaves_valid_empty_unless_folds(tmp_path):
    # MoleculeACE's layout: a `split` column holding train and test only
    rows = [(s, i % 2, "train" if i % 4 else "test") for i, s in enumerate(SMILES[:24])]
    path = write_csv(tmp_path / "ace.csv", rows)
    build("csv", "--input", path, "--smiles-column", "smiles", "--target-columns", "y",
          "--split-column", "split", "--output", str(tmp_path / "plain"))
    manifest = MoleculeShards(str(tmp_path / "plain")).manifest
    assert manifest["splits"] == {"train": 18, "valid": 0, "test": 6}
    assert len(MoleculeShards(str(tmp_path / "plain"), "valid")) == 0

    build("csv", "--input", path, "--smiles-column", "smiles", "--target-columns", "y",
          "--split-column", "split", "--folds", "3", "--fold", "1", "--output", str(tmp_path / "fold"))
    manifest = MoleculeShards(str(tmp_path / "fold")).manifest
    assert manifest["splits"] == {"train": 12, "valid": 6, "test": 6}
    assert manifest["split"] == {"method": "column", "column": "split", "folds": 3, "fold": 1,
                                 "folds_by": "random", "seed": 0}
    test_ids = {r.id for r in split_records(tmp_path / "fold")["test"]}
    assert test_ids == {str(i) for i in range(24) if i % 4 == 0}


def test_a_bad_split_label_names_file_row_and_value(tmp_path, capsys):
    rows = [(s, 1, "train") for s in SMILES[:5]] + [(SMILES[5], 1, "validation")]
    path = write_csv(tmp_path / "mols.csv", rows)
    assert main(["csv", "--input", path, "--smiles-column", "smiles", "--split-column", "split",
                 "--output", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "mols.csv row 5" in error and "'validation'" in error and len(error.splitlines()) == 1
    assert not os.path.exists(tmp_path / "out" / "manifest.json")


def test_separate_files_keep_their_molecules_and_prefix_their_ids(tmp_path):
    train = write_csv(tmp_path / "train.csv", [(s, 0, "") for s in SMILES[:10]])
    valid = write_csv(tmp_path / "valid.csv", [(s, 1, "") for s in SMILES[10:13]])
    test = write_csv(tmp_path / "test.csv", [(s, 2, "") for s in SMILES[13:17]] + [(INVALID, 2, "")])
    out = tmp_path / "out"
    build("csv", "--input", train, "--valid-input", valid, "--test-input", test, "--smiles-column", "smiles",
          "--target-columns", "y", "--output", str(out))
    manifest = MoleculeShards(str(out)).manifest
    assert manifest["splits"] == {"train": 10, "valid": 3, "test": 4}
    assert manifest["split"] == {"method": "files", "files": {
        "train": {"name": "train.csv", "rows": [0, 10]}, "valid": {"name": "valid.csv", "rows": [10, 13]},
        "test": {"name": "test.csv", "rows": [13, 18]}}}
    assert [f["name"] for f in manifest["source"]["files"]] == ["train.csv", "valid.csv", "test.csv"]
    assert [(r["row"], r["id"]) for r in read_rejects(str(out))] == [(17, "test:4")]
    records = split_records(out)
    for name, first in (("train", 0), ("valid", 10), ("test", 13)):
        assert [r.id for r in records[name]] == [f"{name}:{i}" for i in range(len(records[name]))]
        assert [r.smiles for r in records[name]] == SMILES[first:first + len(records[name])]
        assert all(r.targets[0] == ("train", "valid", "test").index(name) for r in records[name])


def test_an_id_in_two_files_is_an_error(tmp_path, capsys):
    header = ("name", "smiles", "y")
    train = write_csv(tmp_path / "train.csv", [("a", "CCO", 1), ("b", "CCN", 2)], header)
    test = write_csv(tmp_path / "test.csv", [("c", "CCC", 1), ("b", "CCCl", 2)], header)
    assert main(["csv", "--input", train, "--test-input", test, "--smiles-column", "smiles", "--id-column", "name",
                 "--output", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "'b'" in error and "train.csv" in error and "test.csv" in error


def test_folds_cover_the_molecules_outside_test_once_and_are_reproducible(tmp_path):
    path = write_csv(tmp_path / "mols.csv", [(s, i, "") for i, s in enumerate(SMILES[:40])])
    args = ["csv", "--input", path, "--smiles-column", "smiles", "--target-columns", "y", "--seed", "3"]
    valid_ids, test_ids = [], set()
    for fold in range(4):
        build(*args, "--folds", "4", "--fold", str(fold), "--output", str(tmp_path / f"f{fold}"))
        records = split_records(tmp_path / f"f{fold}")
        valid_ids.append({r.id for r in records["valid"]})
        test_ids.add(frozenset(r.id for r in records["test"]))
        assert not {r.id for r in records["train"]} & valid_ids[-1]
    assert len(test_ids) == 1  # test does not depend on the fold
    (test,) = test_ids
    assert len(test) == 4  # 10 % of 40, as without folds
    assert set().union(*valid_ids) == {str(i) for i in range(40)} - test
    assert sum(len(v) for v in valid_ids) == 36 and all(len(v) == 9 for v in valid_ids)
    build(*args, "--folds", "4", "--fold", "2", "--output", str(tmp_path / "again"))
    assert {r.id for r in split_records(tmp_path / "again")["valid"]} == valid_ids[2]
    manifest = MoleculeShards(str(tmp_path / "again")).manifest
    assert manifest["split"] == {"method": "random", "fractions": [0.8, 0.1, 0.1], "folds": 4, "fold": 2,
                                 "folds_by": "random", "seed": 3}


def test_scaffold_folds_keep_scaffold_groups_whole():
    smiles = SMILES[:140]
    scaffolds = [murcko_scaffold(s) for s in smiles]
    folds = fold_split(len(smiles), 5, seed=1, scaffolds=scaffolds)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(smiles)))
    groups = [{scaffolds[p] for p in fold} for fold in folds]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not groups[i] & groups[j]
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= max(scaffolds.count(s) for s in set(scaffolds))
    again = fold_split(len(smiles), 5, seed=1, scaffolds=scaffolds)
    assert all((a == b).all() for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="scaffold groups"):
        fold_split(3, 3, seed=0, scaffolds=["A", "A", "B"])


def test_scaffold_folds_of_a_given_split(tmp_path):
    rows = [(s, 0, "test" if i % 5 == 0 else "train") for i, s in enumerate(SMILES[:50])]
    path = write_csv(tmp_path / "mols.csv", rows)
    build("csv", "--input", path, "--smiles-column", "smiles", "--split-column", "split", "--split", "scaffold",
          "--folds", "3", "--fold", "0", "--output", str(tmp_path / "out"))
    records = split_records(tmp_path / "out")
    assert {r.id for r in records["test"]} == {str(i) for i in range(0, 50, 5)}
    valid = {murcko_scaffold(r.smiles) for r in records["valid"]}
    train = {murcko_scaffold(r.smiles) for r in records["train"]}
    assert valid and not valid & train
    split = MoleculeShards(str(tmp_path / "out")).manifest["split"]
    assert split["folds_by"] == "scaffold" and split["seed"] == 0


def test_split_property_of_an_sdf(tmp_path):
    path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(path))
    names = ["Train", "valid", "test ", "train"]
    for i, smiles in enumerate(SMILES[:12]):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", f"m{i}")
        mol.SetProp("set", names[i % 4])
        writer.write(mol)
    writer.close()
    build("sdf", "--input", str(path), "--split-property", "set", "--output", str(tmp_path / "out"))
    records = split_records(tmp_path / "out")
    assert {n: [r.id for r in rs] for n, rs in records.items()} == {
        "train": ["m0", "m3", "m4", "m7", "m8", "m11"], "valid": ["m1", "m5", "m9"], "test": ["m2", "m6", "m10"]}
    assert MoleculeShards(str(tmp_path / "out")).manifest["split"] == {"method": "column", "column": "set"}


def test_plan_without_given_labels_is_refused():
    with pytest.raises(ValueError, match="each molecule's split"):
        SplitPlan(given="column").divide(3)


@pytest.mark.parametrize("extra, message", [
    (["--split-column", "split", "--valid-input", "v.csv"], "--split-column and --valid-input/--test-input"),
    (["--fold", "1"], "--fold needs --folds"),
    (["--folds", "3"], "--folds 3 needs --fold"),
    (["--folds", "3", "--fold", "3"], "--fold 3 is out of range for --folds 3"),
    (["--test-input", "t.csv", "--split-fractions", "0.7,0.2,0.1"], "--split-fractions applies to"),
])
def test_bad_combinations_are_one_line_errors(tmp_path, capsys, extra, message):
    path = write_csv(tmp_path / "mols.csv", [(s, 0, "train") for s in SMILES[:4]])
    write_csv(tmp_path / "v.csv", [])
    write_csv(tmp_path / "t.csv", [])
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["csv", "--input", path, "--smiles-column", "smiles", "--output", "out", "--quiet", *extra])
    finally:
        os.chdir(cwd)
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and len(error.splitlines()) == 1


def test_folds_below_two_are_refused_when_parsed(capsys):
    with pytest.raises(SystemExit):
        main(["csv", "--input", "x.csv", "--smiles-column", "s", "--output", "o", "--folds", "1", "--fold", "0"])
    assert "--folds" in capsys.readouterr().err


def test_manifest_records_the_split_of_every_source(tmp_path):
    build("qm9", "--input", f"{FIXTURES}/qm9_sample.csv", "--output", str(tmp_path / "q"),
          "--valid-size", "3", "--test-size", "3")
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["split"] == {"method": "random", "seed": 0, "valid_size": 3, "test_size": 3}
    assert "split" not in manifest["source"]["options"]
