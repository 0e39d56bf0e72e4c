"""Prediction from fine-tuned checkpoints: rows stay aligned with the input, statistics come
from the checkpoint, the command line and the Python API agree, and evaluation agrees
with both."""
import csv
import json

import numpy as np
import pytest
import torch

from finetune_runs import (bbbp_dataset, classification_checkpoint, qm9_dataset, regression_checkpoint,
                           seed_runner)
from model_inputs import ASPIRIN, CAFFEINE, ETHANOL, NAPHTHOL, SALT
from moleblend_plugin import evaluate, inference, predict
from moleblend_plugin.checkpoints.safe_loading import load_checkpoint_file
from moleblend_plugin.criterions.property_metrics import mean_roc_auc
from moleblend_data.shards import MoleculeShards
from moleblend_plugin.inference import MoleBlendPredictor

# Valid molecules with invalid ones between them: (input, reject reason or None).
MIXED = [(ASPIRIN, None), ("C1CC(", "invalid_smiles"), (CAFFEINE, None), ("*c1ccccc1", "wildcard_atom"),
         ("[Na+]", None), (ETHANOL, None), ("", "invalid_smiles"), (SALT, None), ("C", None),
         (NAPHTHOL, None)]


@pytest.fixture(scope="module")
def predictor():
    return MoleBlendPredictor.from_checkpoint(regression_checkpoint(), batch_size=4)


def test_rows_stay_aligned_with_the_input(predictor):
    smiles = [s for s, _ in MIXED]
    values, errors = predictor.predict(smiles)
    assert values.shape == (len(MIXED), 2) and len(errors) == len(MIXED)
    for k, (molecule, reason) in enumerate(MIXED):
        if reason:
            assert errors[k].split(":")[0] == reason
            assert np.isnan(values[k]).all()
        else:
            assert errors[k] == ""
            # The same numbers as the molecule alone: no row was shifted or swapped.
            alone, alone_errors = predictor.predict([molecule])
            assert alone_errors == [""]
            np.testing.assert_allclose(values[k], alone[0], rtol=1e-4)
    valid = values[[k for k, (_, r) in enumerate(MIXED) if r is None]]
    assert len(np.unique(valid[:, 0])) == len(valid)  # different molecules, different predictions
    embeddings, embed_errors = predictor.embed(smiles)
    assert embed_errors == errors and embeddings.shape == (len(MIXED), predictor.embedding_dim)
    assert np.isnan(embeddings[1]).all() and np.isfinite(embeddings[0]).all()


def test_rdkit_molecules_and_smiles_give_the_same_predictions(predictor):
    from rdkit import Chem

    by_smiles, _ = predictor.predict([ASPIRIN, CAFFEINE])
    by_mol, errors = predictor.predict([Chem.MolFromSmiles(ASPIRIN), Chem.MolFromSmiles(CAFFEINE)])
    assert errors == ["", ""]
    np.testing.assert_allclose(by_mol, by_smiles, rtol=1e-5)
    with pytest.raises(TypeError):
        predictor.predict([42])


def test_statistics_come_from_the_checkpoint_not_the_dataset(tmp_path, predictor):
    state = load_checkpoint_file(regression_checkpoint())
    state["cfg"]["task"]["data"] = str(tmp_path / "gone")  # the prepared dataset is not needed
    stored = state["task_state"]["targets"]
    assert [t["name"] for t in stored] == ["gap", "homo"] and stored[0]["unit"] == "meV"
    manifest = {t["name"]: t for t in MoleculeShards(qm9_dataset()).manifest["targets"]}
    assert stored[0]["mean"] == pytest.approx(manifest["gap"]["mean"], rel=1e-6)
    assert stored[1]["std"] == pytest.approx(manifest["homo"]["std"], rel=1e-6)
    stored[0]["mean"] += 1000.0
    stored[1]["std"] *= 2.0
    moved_path = tmp_path / "moved.pt"
    torch.save(state, moved_path)
    moved = MoleBlendPredictor.from_checkpoint(str(moved_path))
    before, _ = predictor.predict([ASPIRIN, ETHANOL])
    after, _ = moved.predict([ASPIRIN, ETHANOL])
    np.testing.assert_allclose(after[:, 0], before[:, 0] + 1000.0, rtol=1e-5)
    homo = predictor.targets[1]
    np.testing.assert_allclose(after[:, 1] - homo.mean, 2.0 * (before[:, 1] - homo.mean), rtol=1e-4)


def test_command_line_and_api_agree(tmp_path, predictor):
    source = tmp_path / "molecules.csv"
    with open(source, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "structure", "note"])
        for k, (smiles, _) in enumerate(MIXED):
            writer.writerow([f"m{k}", smiles, "x, with a comma"])
    out, vectors = tmp_path / "out" / "pred.csv", tmp_path / "emb.npy"
    assert predict.main([regression_checkpoint(), "--input", str(source), "--smiles-column", "structure",
                         "--id-column", "name", "--output", str(out), "--embeddings", str(vectors),
                         "--quiet", "--batch-size", "3"]) == 0
    rows = list(csv.DictReader(open(out, newline="")))
    expected = predictor.run([s for s, _ in MIXED])
    assert [r["id"] for r in rows] == [f"m{k}" for k in range(len(MIXED))]
    assert [r["smiles"] for r in rows] == [s for s, _ in MIXED]
    assert [r["error"] for r in rows] == expected.errors
    for k, row in enumerate(rows):
        cells = [row["gap"], row["homo"]]
        if expected.errors[k]:
            assert cells == ["", ""]
        else:
            np.testing.assert_allclose([float(c) for c in cells], expected.predictions[k], rtol=1e-5)
    np.testing.assert_allclose(np.load(vectors), expected.embeddings, rtol=1e-5, equal_nan=True)


def test_smiles_list_input_keeps_every_line(tmp_path):
    source = tmp_path / "molecules.smi"
    source.write_text(f"{ASPIRIN} aspirin\nnot-a-molecule\n\n{ETHANOL}\n")
    ids, smiles = predict.read_molecules(str(source))
    assert ids == ["aspirin", "1", "2", "3"] and smiles == [ASPIRIN, "not-a-molecule", "", ETHANOL]


def test_classification_evaluation_matches_the_api(tmp_path, monkeypatch):
    checkpoint = classification_checkpoint()
    # A 2d model never asks for a conformer.
    monkeypatch.setattr(inference, "make_record", _no_conformers(inference.make_record))
    api = MoleBlendPredictor.from_checkpoint(checkpoint)
    assert api.task_type == "classification" and api.options.num_conformers == 0
    train = MoleculeShards(bbbp_dataset(), "train")
    records = [train[i] for i in range(len(train))]
    probabilities, errors = api.predict([r.smiles for r in records])
    assert not any(errors) and np.all((probabilities >= 0) & (probabilities <= 1))
    labels = np.stack([r.targets for r in records])
    assert np.isnan(labels).any()  # the fixture has a missing label
    table = tmp_path / "train.csv"
    result = evaluate.evaluate(checkpoint, bbbp_dataset(), "train", batch_size=5, predictions_csv=str(table))
    assert result["task_type"] == "classification"
    assert result["targets"][0]["labels"] == int((~np.isnan(labels)).sum())
    assert result["metrics"]["auc"] == pytest.approx(mean_roc_auc(labels, probabilities), abs=1e-6)
    rows = list(csv.DictReader(open(table, newline="")))
    assert [r["id"] for r in rows] == [r.id for r in records]
    np.testing.assert_allclose([float(r["p_np_prediction"]) for r in rows], probabilities[:, 0], rtol=1e-5)
    json.dumps(result, allow_nan=False)


def _no_conformers(make_record):
    def guarded(molecule, options, **kwargs):
        assert options.num_conformers == 0
        return make_record(molecule, options, **kwargs)

    return guarded


@pytest.mark.parametrize("module", [evaluate, predict, "run_seeds"])
def test_every_flag_documented(module):
    module = seed_runner() if module == "run_seeds" else module
    for action in module.make_parser()._actions:
        assert action.help, f"{module.__name__} {action.option_strings} has no help"


def test_a_molecule_with_3d_coordinates_brings_its_geometry(predictor):
    """An RDKit molecule read from an SDF keeps its coordinates and the stereo they define,
    as data_prep reads the same file; a SMILES gets an RDKit conformer."""
    from rdkit import Chem

    from moleblend_data.molecule import Geometry

    mol = next(Chem.SDMolSupplier("tests/fixtures/small.sdf"))
    record = predictor.featurize(mol)
    assert record.geometry == Geometry.SOURCE
    np.testing.assert_allclose(record.coordinates[0], mol.GetConformer().GetPositions(), atol=1e-6)
    from_smiles = predictor.featurize(Chem.MolToSmiles(mol))
    assert from_smiles.geometry == Geometry.RDKIT_3D
