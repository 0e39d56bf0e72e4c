"""Users' own splits: a split column, separate valid/test files, k-fold cross-validation."""
import csv
import os

import pytest

from data_prep.__main__ import main
from data_prep.splits import murcko_scaffold
from moleblend_data.shards import MoleculeShards

ESOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "data", "esol", "esol.csv")
TARGET = "measured log solubility in mols per litre"


def _esol_rows(n=60):
    with open(ESOL, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))[:n]


def _write(path, rows, extra=None):
    fields = ["smiles", "y", "name"] + ([extra] if extra else [])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _table(n=60):
    return [{"smiles": r["smiles"], "y": r[TARGET], "name": r["Compound ID"].strip()} for r in _esol_rows(n)]


def _ids(out, split):
    shards = MoleculeShards(str(out), split)
    return [shards[i].id for i in range(len(shards))]


def _prep(*args):
    assert main(["csv", "--smiles-column", "smiles", "--target-columns", "y", "--conformers", "0", "--quiet", *args]) == 0


def test_a_split_column_puts_every_row_where_it_says(tmp_path):
    rows = _table()
    for k, row in enumerate(rows):
        row["split"] = [" Train", "valid", "TEST", "train", "validation"][k % 5]
    rows[7]["smiles"] = "not a molecule"  # rejected, counted, in no split
    _write(tmp_path / "data.csv", rows, "split")
    out = tmp_path / "built"
    _prep("--input", str(tmp_path / "data.csv"), "--output", str(out), "--split-column", "split", "--id-column", "name")
    expected = {"train": [], "valid": [], "test": []}
    for k, row in enumerate(rows):
        if k != 7:
            name = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}[row["split"].strip().lower()]
            expected[name].append(row["name"].strip())
    for split, names in expected.items():
        assert sorted(_ids(out, split)) == sorted(names)
    manifest = MoleculeShards(str(out)).manifest
    assert manifest["source"]["options"]["split"] == {"method": "column", "column": "split"}
    assert manifest["num_rejected"] == 1


def test_an_unknown_split_value_is_refused_before_featurizing(tmp_path, capsys):
    rows = _table(10)
    for row in rows:
        row["split"] = "train"
    rows[4]["split"] = "holdout"
    _write(tmp_path / "data.csv", rows, "split")
    assert main(["csv", "--input", str(tmp_path / "data.csv"), "--smiles-column", "smiles", "--target-columns", "y",
                 "--output", str(tmp_path / "out"), "--split-column", "split", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tmp_path / 'data.csv'} line 6: split column 'split' holds 'holdout'; "
                   "expected train, valid or test")


def test_separate_files_are_the_splits_and_ids_name_their_file(tmp_path):
    rows = _table(50)
    _write(tmp_path / "train.csv", rows[:30])
    _write(tmp_path / "valid.csv", rows[30:40])
    _write(tmp_path / "test.csv", rows[40:])
    out = tmp_path / "built"
    _prep("--input", str(tmp_path / "train.csv"), "--valid-input", str(tmp_path / "valid.csv"),
          "--test-input", str(tmp_path / "test.csv"), "--output", str(out))
    assert sorted(_ids(out, "valid")) == sorted(f"valid:{k}" for k in range(10))
    assert sorted(_ids(out, "test")) == sorted(f"test:{k}" for k in range(10))
    shards = MoleculeShards(str(out), "valid")
    by_id = {shards[i].id: shards[i] for i in range(len(shards))}
    assert by_id["valid:3"].smiles == rows[33]["smiles"]
    split = shards.manifest["source"]["options"]["split"]
    assert split["method"] == "files" and split["files"]["valid"] == str(tmp_path / "valid.csv")


@pytest.mark.parametrize("grouping", ["random", "scaffold"])
def test_folds_partition_the_train_part_and_leave_test_alone(tmp_path, grouping):
    rows = _table(80)
    _write(tmp_path / "data.csv", rows)
    valid_ids, test_sets, train_part = [], [], None
    for fold in range(4):
        out = tmp_path / f"fold{fold}"
        _prep("--input", str(tmp_path / "data.csv"), "--output", str(out), "--split", grouping, "--folds", "4",
              "--fold", str(fold), "--id-column", "name", "--seed", "3")
        train, valid, test = (set(_ids(out, s)) for s in ("train", "valid", "test"))
        assert not train & valid and valid and not (train | valid) & test
        train_part = train_part or (train | valid)
        assert train | valid == train_part
        valid_ids.append(valid)
        test_sets.append(test)
        if grouping == "scaffold":
            smiles = {r["name"]: r["smiles"] for r in rows}
            assert not {murcko_scaffold(smiles[i]) for i in train} & {murcko_scaffold(smiles[i]) for i in valid}
    assert set().union(*valid_ids) == train_part and sum(len(v) for v in valid_ids) == len(train_part)
    assert all(t == test_sets[0] for t in test_sets)
    manifest = MoleculeShards(str(tmp_path / "fold2")).manifest
    assert manifest["source"]["options"]["split"]["cross_validation"]["fold"] == 2
    # the same flags give the same fold
    _prep("--input", str(tmp_path / "data.csv"), "--output", str(tmp_path / "again"), "--split", grouping,
          "--folds", "4", "--fold", "2", "--id-column", "name", "--seed", "3")
    assert set(_ids(tmp_path / "again", "valid")) == valid_ids[2]


@pytest.mark.parametrize("flags, message", [
    (["--folds", "3", "--fold", "3"], "--fold 3 of --folds 3"),
    (["--fold", "1"], "--fold needs --folds"),
    (["--split-column", "split", "--valid-input", "x.csv"], "not both"),
])
def test_bad_split_flags_are_one_line(tmp_path, capsys, flags, message):
    rows = _table(10)
    for row in rows:
        row["split"] = "train"
    _write(tmp_path / "data.csv", rows, "split")
    _write(tmp_path / "x.csv", rows, "split")
    flags = [str(tmp_path / f) if f == "x.csv" else f for f in flags]
    assert main(["csv", "--input", str(tmp_path / "data.csv"), "--smiles-column", "smiles", "--target-columns", "y",
                 "--output", str(tmp_path / "out"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
