"""Input is validated before work starts (arguments) and row by row after (labels, cells,
encodings), and every rejected row is counted and named."""
import csv
import os

import numpy as np
import pytest
from rdkit import Chem

from data_prep.__main__ import main
from data_prep.rejects import read_rejects
from finetune_runs import regression_checkpoint
from model_inputs import ASPIRIN, ETHANOL
from moleblend_plugin import predict
from moleblend_data.shards import MoleculeShards
from moleblend_plugin.inference import MoleBlendPredictor


def write(path, text, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return str(path)


def build_csv(tmp_path, text, *extra):
    source = write(tmp_path / "in.csv", text)
    out = tmp_path / "out"
    code = main(["csv", "--input", source, "--smiles-column", "smiles", "--target-columns", "y",
                 "--output", str(out), "--conformers", "0", "--quiet", *extra])
    return code, out


def test_labels_that_are_not_finite_float32_numbers_are_rejected_with_their_row(tmp_path):
    rows = ["CCO,1.5", "CCN,inf", "CCC,-inf", "CCCl,1e39", "CCBr,1_000", "c1ccccc1,", "CCCC,-2e-3", "CC=O,nan"]
    code, out = build_csv(tmp_path, "smiles,y\n" + "\n".join(rows) + "\n", "--split-fractions", "1,0,0")
    assert code == 0
    rejects = {r["row"]: r["reason"] for r in read_rejects(str(out))}
    assert rejects == {1: "invalid_label", 2: "invalid_label", 3: "invalid_label", 4: "invalid_label"}
    records = MoleculeShards(str(out))
    labels = {r.smiles: r.targets[0] for r in records}
    assert labels["CCO"] == 1.5 and labels["CCCC"] == np.float32(-2e-3)
    assert np.isnan(labels["c1ccccc1"]) and np.isnan(labels["CC=O"])  # missing labels


def test_rows_with_missing_cells_and_blank_lines_are_rejected_not_padded(tmp_path):
    text = "smiles,y,note\nCCO,1,a\nCCN,2\n\nCCC,3,c,extra\nCCCC,4,d\n"
    code, out = build_csv(tmp_path, text, "--split-fractions", "1,0,0")
    assert code == 0
    rejects = {r["row"]: (r["reason"], r["detail"]) for r in read_rejects(str(out))}
    assert rejects == {1: ("malformed_row", "2 cells, the header has 3"), 2: ("malformed_row", "blank line"),
                       3: ("malformed_row", "4 cells, the header has 3")}
    assert sorted(r.smiles for r in MoleculeShards(str(out))) == ["CCCC", "CCO"]


def test_a_file_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys):
    source = tmp_path / "latin1.csv"
    source.write_bytes("smiles,y\nCCO,1\nCCN,2\nCC\xe9,3\n".encode("latin-1"))
    code = main(["csv", "--input", str(source), "--smiles-column", "smiles", "--target-columns", "y",
                 "--output", str(tmp_path / "out"), "--conformers", "0", "--quiet"])
    assert code == 2
    assert "latin1.csv line 4: not UTF-8" in capsys.readouterr().err


def test_an_empty_file_is_a_clear_error(tmp_path, capsys):
    code = main(["csv", "--input", write(tmp_path / "empty.csv", ""), "--smiles-column", "smiles",
                 "--target-columns", "y", "--output", str(tmp_path / "out"), "--quiet"])
    assert code == 2 and "empty.csv is empty" in capsys.readouterr().err


def test_a_smiles_with_whitespace_inside_is_rejected(tmp_path):
    code, out = build_csv(tmp_path, 'smiles,y\n"CC\nO",1\nCCO,2\n', "--split-fractions", "1,0,0")
    assert code == 0
    assert [r["reason"] for r in read_rejects(str(out))] == ["invalid_smiles"]
    assert [r.smiles for r in MoleculeShards(str(out))] == ["CCO"]


@pytest.mark.parametrize("flag, value", [("--shard-size", "0"), ("--seed", "-1"), ("--max-atoms", "-5"),
                                         ("--limit", "-1"), ("--conformers", "-2"), ("--workers", "0"),
                                         ("--conformer-timeout", "0"), ("--split-fractions", "0.9,0.2,-0.1"),
                                         ("--split-fractions", "0.5,0.2,0.2")])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        main(["csv", "--input", "does-not-matter.csv", "--smiles-column", "smiles", "--target-columns", "y",
              "--output", str(tmp_path / "out"), flag, value])
    assert stop.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unsanitizable_molecule_gets_its_own_row():
    predictor = MoleBlendPredictor.from_checkpoint(regression_checkpoint(), batch_size=4)
    broken = Chem.MolFromSmiles("C1=CC=CC=C1C(C)(C)(C)C", sanitize=False)  # a five-valent carbon
    values, errors = predictor.predict([ASPIRIN, broken, ETHANOL])
    assert errors[0] == errors[2] == "" and errors[1].startswith("invalid_smiles")
    assert np.isfinite(values[[0, 2]]).all() and np.isnan(values[1]).all()


def test_blank_lines_of_a_prediction_csv_keep_their_rows(tmp_path):
    source = write(tmp_path / "in.csv", "name,smiles\nethanol,CCO\n\naspirin,CC(=O)Oc1ccccc1C(=O)O\n")
    out = tmp_path / "pred.csv"
    assert predict.main([regression_checkpoint(), "--input", source, "--output", str(out), "--quiet"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["smiles"] for r in rows] == ["CCO", "", "CC(=O)Oc1ccccc1C(=O)O"]
    assert rows[1]["error"].startswith("invalid_smiles") and rows[0]["error"] == rows[2]["error"] == ""
    assert os.path.exists(out)
