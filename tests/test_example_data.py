"""The bundled example data sets build, with every molecule accounted for."""
import csv
import os

from data_prep.__main__ import main
from moleblend_data.shards import MoleculeShards

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "data")


def rows(path):
    with open(path, newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def test_bundled_qm9(tmp_path):
    path = os.path.join(EXAMPLES, "qm9", "qm9.csv")
    assert main(["qm9", "--input", path, "--output", str(tmp_path), "--valid-size", "30",
                 "--test-size", "30", "--quiet"]) == 0
    manifest = MoleculeShards(str(tmp_path), "train").manifest
    assert rows(path) == 300 == manifest["num_molecules"] + manifest["num_rejected"]
    assert manifest["splits"]["valid"] == 30 and manifest["geometry"] == {"source": manifest["num_molecules"]}


def test_bundled_esol(tmp_path):
    path = os.path.join(EXAMPLES, "esol", "esol.csv")
    assert main(["moleculenet", "--dataset", "esol", "--input", path, "--output", str(tmp_path),
                 "--conformers", "0", "--quiet"]) == 0
    manifest = MoleculeShards(str(tmp_path), "train").manifest
    assert rows(path) == 300 == manifest["num_molecules"] + manifest["num_rejected"]
    assert manifest["targets"][0]["unit"] == "log(mol/L)"
    assert sum(manifest["splits"].values()) == manifest["num_molecules"]
