"""data_prep end to end on small fixtures: sources, rejects, label alignment, splits,
resumed builds and the command line."""
import csv
import gzip
import math
import os

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from data_prep.__main__ import main, make_parser
from data_prep.build import BuildOptions, build
from data_prep.rejects import read_rejects
from data_prep.sources import CsvSource, TargetSpec
from data_prep.sources.qm9 import HARTREE_TO_MEV, parse_coordinates, parse_elements
from data_prep.splits import murcko_scaffold, random_split, scaffold_split
from moleblend_data.featurize import FeaturizeOptions
from moleblend_data.molecule import Geometry
from moleblend_data.shards import MoleculeShards

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ELEMENT = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}


def records(data_dir):
    dataset = MoleculeShards(str(data_dir))
    return [dataset[i] for i in range(len(dataset))]


def run(*args):
    assert main([*args, "--quiet"]) == 0


def test_moleculenet_rejects_and_label_alignment(tmp_path):
    out = tmp_path / "bbbp"
    run("moleculenet", "--dataset", "bbbp", "--input", f"{FIXTURES}/bbbp_bad.csv",
        "--output", str(out), "--conformers", "0")
    rows = list(csv.DictReader(open(f"{FIXTURES}/bbbp_bad.csv", newline="")))
    rejects = {r["row"]: r["reason"] for r in read_rejects(str(out))}
    assert rejects == {2: "invalid_smiles", 5: "wildcard_atom",
                       15: "invalid_label", 18: "invalid_smiles", 20: "invalid_smiles"}
    dataset = MoleculeShards(str(out))
    manifest = dataset.manifest
    assert manifest["num_molecules"] == len(rows) - 5 == len(dataset)
    assert manifest["num_rejected"] == 5
    assert manifest["rejected_by_reason"] == {"invalid_label": 1, "invalid_smiles": 3,
                                              "wildcard_atom": 1}
    assert sum(manifest["splits"].values()) == manifest["num_molecules"]
    seen = set()
    for record in records(out):
        row = rows[int(record.id)]
        assert record.smiles == row["smiles"].strip()
        expected = np.float32(row["p_np"]) if row["p_np"] else np.float32("nan")
        np.testing.assert_array_equal(record.targets, [expected])
        assert record.coordinates.shape[0] == 0 and record.geometry == Geometry.NONE
        seen.add(int(record.id))
    assert seen == set(range(len(rows))) - set(rejects)  # every other row, once
    assert math.isnan(MoleculeShards(str(out)).manifest["targets"][0]["mean"]) is False
    kept = {int(r.id): r for r in records(out)}
    assert kept[7].atom_features[:, 0].tolist().count(28) == 1  # copper complex kept
    assert kept[9].num_atoms == 20  # the salt is kept whole
    assert np.isnan(kept[13].targets[0])  # missing label kept as NaN
    target = manifest["targets"][0]
    assert target["name"] == "p_np" and target["task_type"] == "classification"
    train = MoleculeShards(str(out), "train")
    labels = np.array([train[i].targets[0] for i in range(len(train))])
    assert target["mean"] == pytest.approx(np.nanmean(labels))
    assert target["std"] == pytest.approx(np.nanstd(labels))
    assert manifest["source"]["files"][0]["name"] == "bbbp_bad.csv"
    assert len(manifest["source"]["files"][0]["sha256"]) == 64


def test_preset_column_missing_lists_columns(tmp_path, capsys):
    path = tmp_path / "clintox.csv"
    path.write_text("smiles,CT_TOX\nCCO,0\nc1ccccc1O,1\nCCN,0\n")
    assert main(["moleculenet", "--dataset", "clintox", "--input", str(path),
                 "--output", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "FDA_APPROVED" in error and "['smiles', 'CT_TOX']" in error
    run("moleculenet", "--dataset", "clintox", "--input", str(path), "--targets", "CT_TOX",
        "--output", str(tmp_path / "out"), "--conformers", "0")
    assert [t["name"] for t in MoleculeShards(str(tmp_path / "out")).manifest["targets"]] == ["CT_TOX"]


def test_scaffold_split_protocol():
    smiles = pd.read_csv(f"{FIXTURES}/molecules.csv")["smiles"].tolist()[:140]
    scaffolds = [murcko_scaffold(s) for s in smiles]
    split = scaffold_split(scaffolds)
    parts = {k: set(v.tolist()) for k, v in split.items()}
    assert sorted(set().union(*parts.values())) == list(range(len(smiles)))
    assert len(parts["train"]) <= 0.8 * len(smiles) and len(parts["train"]) >= 0.7 * len(smiles)
    for name, members in parts.items():  # no scaffold in two parts
        others = set().union(*(p for n, p in parts.items() if n != name))
        assert not {scaffolds[i] for i in members} & {scaffolds[i] for i in others}
    # the largest scaffold group (benzene here) is in train
    biggest = max(set(scaffolds), key=scaffolds.count)
    assert all(i in parts["train"] for i, s in enumerate(scaffolds) if s == biggest)


def test_scaffold_split_hand_checked():
    # A: 5 molecules, B: 3, C and D: 1 each. Train takes A and B (8 = 80%); of the
    # singletons, the one whose molecule comes later (C, position 9) goes first -> valid.
    scaffolds = ["A", "A", "B", "A", "B", "D", "A", "B", "A", "C"]
    split = scaffold_split(scaffolds)
    assert split["train"].tolist() == [0, 1, 2, 3, 4, 6, 7, 8]
    assert split["valid"].tolist() == [9] and split["test"].tolist() == [5]


def test_random_split_counts_and_seed():
    a = random_split(1000, seed=0, valid_size=100, test_size=150)
    b = random_split(1000, seed=0, valid_size=100, test_size=150)
    c = random_split(1000, seed=1, valid_size=100, test_size=150)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [750, 100, 150]
    assert all((a[k] == b[k]).all() for k in a) and not (a["test"] == c["test"]).all()
    with pytest.raises(ValueError):
        random_split(10, seed=0, valid_size=6, test_size=6)


def source_atoms(row):
    elements = parse_elements(row["Elements"])
    xyz = np.asarray(parse_coordinates(row["XYZ_Ang"])).reshape(-1, 3)
    return [(ELEMENT[e], p) for e, p in zip(elements, xyz)]


def assert_geometry_matches(record, row):
    """Every heavy atom of the source is a node, and every node sits where the source
    geometry has an atom of its element (hydrogens that define stereo are nodes too)."""
    atoms = source_atoms(row)
    assert sum(z > 1 for z, _ in atoms) == (record.atomic_numbers > 1).sum()
    for z, position in zip(record.atomic_numbers, record.coordinates[0]):
        distances = [np.linalg.norm(position - p) for e, p in atoms if e == z]
        assert min(distances) < 1e-4


def test_qm9_tabular_units_and_geometry(tmp_path):
    out = tmp_path / "qm9"
    run("qm9", "--input", f"{FIXTURES}/qm9_sample.csv", "--output", str(out),
        "--valid-size", "5", "--test-size", "5", "--shard-size", "7")
    frame = pd.read_csv(f"{FIXTURES}/qm9_sample.csv").set_index("Index")
    manifest = MoleculeShards(str(out)).manifest
    assert manifest["rejected_by_reason"] == {}  # CH4, NH3 and H2O are single heavy atoms, kept
    assert manifest["splits"] == {"train": len(frame) - 10, "valid": 5, "test": 5}
    assert len(manifest["shards"]) == math.ceil(manifest["num_molecules"] / 7)
    names = [t["name"] for t in manifest["targets"]]
    assert names == ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]
    assert {t["name"]: t["unit"] for t in manifest["targets"]}["gap"] == "meV"
    for record in records(out):
        row = frame.loc[int(record.id)]
        # the SMILES of what was featurized: QM9's, with the stereo its geometry defines
        assert (Chem.MolToSmiles(Chem.RemoveAllHs(Chem.MolFromSmiles(record.smiles)), isomericSmiles=False)
                == Chem.MolToSmiles(Chem.MolFromSmiles(row["SMILES"]), isomericSmiles=False))
        assert record.geometry == Geometry.SOURCE
        gap, mu, cv = record.targets[4], record.targets[0], record.targets[11]
        assert gap == np.float32(row["HOMO_LUMO_gap_au"] * HARTREE_TO_MEV)
        assert mu == np.float32(row["Dipole_debye"]) and cv == np.float32(row["Heatcapacity_Cv_cal_mol_K"])
        assert_geometry_matches(record, row)


def test_qm9_gdb9_layout_matches_tabular(tmp_path):
    run("qm9", "--input", f"{FIXTURES}/gdb9/gdb9.sdf", "--output", str(tmp_path / "g"),
        "--valid-size", "2", "--test-size", "2", "--conformers", "0")
    frame = pd.read_csv(f"{FIXTURES}/qm9_sample.csv").set_index("Index")
    manifest = MoleculeShards(str(tmp_path / "g")).manifest
    assert manifest["rejected_by_reason"] == {"uncharacterized": 1}
    assert manifest["num_molecules"] == 11
    for record in records(tmp_path / "g"):
        row = frame.loc[int(record.id.split("_")[1])]
        assert record.targets[7] == np.float32(row["InternalEnergy_0K_au"] * HARTREE_TO_MEV)
        assert record.geometry == Geometry.SOURCE
        assert_geometry_matches(record, row)


def test_pcqm4mv2_layout(tmp_path):
    out = tmp_path / "pcqm"
    run("pcqm4mv2", "--root", f"{FIXTURES}/pcqm4mv2", "--output", str(out), "--conformers", "0")
    manifest = MoleculeShards(str(out)).manifest
    assert manifest["splits"] == {"train": 20, "valid": 5, "test-dev": 3, "test-challenge": 2}
    assert manifest["targets"][0]["unit"] == "eV"
    frame = pd.read_csv(f"{FIXTURES}/qm9_sample.csv").iloc[5:35].reset_index(drop=True)
    with gzip.open(f"{FIXTURES}/pcqm4mv2/pcqm4m-v2/raw/data.csv.gz", "rt") as f:
        labels = {int(r["idx"]): r["homolumogap"] for r in csv.DictReader(f)}
    train = MoleculeShards(str(out), "train")
    for i in range(len(train)):
        record = train[i]
        assert record.geometry == Geometry.SOURCE  # SDF geometry, atoms shuffled in the file
        assert_geometry_matches(record, frame.iloc[int(record.id)])
        assert record.targets[0] == np.float32(labels[int(record.id)])
    test = MoleculeShards(str(out), "test-challenge")
    assert [test[i].id for i in range(2)] == ["28", "29"]
    assert np.isnan(test[0].targets).all() and test[0].geometry == Geometry.NONE


def test_csv_and_sdf_sources(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("name,smi,y,w\na,CCO,1.5,0\nb,c1ccccc1,2,1\na,CCN,3,1\nc,CC(=O)O,,0\nd,OCCO,4,1\n")
    run("csv", "--input", str(path), "--smiles-column", "smi", "--target-columns", "y,w",
        "--id-column", "name", "--split", "scaffold", "--output", str(tmp_path / "c"), "--conformers", "0")
    manifest = MoleculeShards(str(tmp_path / "c")).manifest
    assert manifest["rejected_by_reason"] == {"duplicate_id": 1}
    assert [t["task_type"] for t in manifest["targets"]] == ["regression", "classification"]
    assert sorted(r.id for r in records(tmp_path / "c")) == ["a", "b", "c", "d"]

    run("sdf", "--input", f"{FIXTURES}/small.sdf", "--target-properties", "gap_eV,mu",
        "--output", str(tmp_path / "s"), "--conformers", "2")
    got = records(tmp_path / "s")
    assert len(got) == 10
    flat = [r for r in got if r.geometry != Geometry.SOURCE]
    assert len(flat) == 1 and flat[0].geometry == Geometry.RDKIT_3D  # the 2D record gets conformers
    assert flat[0].coordinates.shape[0] == 2
    assert all(r.coordinates.shape[0] == 1 for r in got if r.geometry == Geometry.SOURCE)
    assert all(r.id.startswith("qm9_") for r in got)


class Interrupted(Exception):
    pass


def test_interrupted_build_resumes_to_the_same_shards(tmp_path, monkeypatch):
    def options(out, workers=1):
        return BuildOptions(output=str(out), workers=workers, shard_size=6, progress=False,
                            featurize=FeaturizeOptions(num_conformers=1, seed=5))

    def source():
        # QM9 molecules by SMILES: small, so their RDKit conformers are quick to make
        return CsvSource(f"{FIXTURES}/qm9_sample.csv", "SMILES", [TargetSpec("Dipole_debye", "D")],
                         split="scaffold")

    reference = build(source(), options(tmp_path / "ref"))

    # killed while featurizing: the journal keeps what was done, plus a torn last entry
    interrupted = source()
    entries = interrupted.entries

    def dying_entries():
        for entry in entries():
            if entry.row == 17:
                raise Interrupted
            yield entry

    interrupted.entries = dying_entries
    with pytest.raises(Interrupted):
        build(interrupted, options(tmp_path / "b"))
    assert not os.path.exists(tmp_path / "b" / "manifest.json")
    with open(tmp_path / "b" / ".build" / "journal.bin", "ab") as f:
        f.write(b"\x05\x00\x00")

    # killed while writing shards: finished shards exist, but no manifest
    import data_prep.build as build_module
    original = build_module.ShardWriter.close

    def dying_close(self):
        raise Interrupted

    monkeypatch.setattr(build_module.ShardWriter, "close", dying_close)
    with pytest.raises(Interrupted):
        build(source(), options(tmp_path / "b"))
    assert any(n.startswith("shard-") for n in os.listdir(tmp_path / "b"))
    with pytest.raises(FileNotFoundError, match="did not finish"):
        MoleculeShards(str(tmp_path / "b"), "train")
    monkeypatch.setattr(build_module.ShardWriter, "close", original)

    resumed = build(source(), options(tmp_path / "b", workers=2))
    assert reference["geometry"] == {"rdkit_etkdg_mmff": 40}
    assert resumed["shards"] == reference["shards"]  # same records (conformers too), byte for byte
    assert resumed == reference
    assert sorted(os.listdir(tmp_path / "b")) == sorted(os.listdir(tmp_path / "ref"))
    with pytest.raises(FileExistsError):
        build(source(), options(tmp_path / "b"))


def test_every_flag_documented():
    parser = make_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    assert set(subparsers.choices) == {"moleculenet", "qm9", "pcqm4mv2", "ogb", "csv", "sdf", "verify"}
    for name, sub in subparsers.choices.items():
        if name == "verify":
            continue
        flags = {o for a in sub._actions for o in a.option_strings}
        assert {"--output", "--workers", "--conformers", "--shard-size"} <= flags
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    moleculenet = subparsers.choices["moleculenet"]
    choices = next(a for a in moleculenet._actions if "--dataset" in a.option_strings).choices
    assert {"bbbp", "bace", "hiv", "clintox", "tox21", "sider", "toxcast", "muv", "esol", "freesolv",
            "lipophilicity"} <= set(choices)
