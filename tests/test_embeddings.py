"""Molecule and atom embeddings from pretrained and fine-tuned checkpoints."""
import os
import subprocess
import sys

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import rdMolTransforms

from finetune_runs import FIXTURES, REPO, classification_checkpoint, pretrain_checkpoint, regression_checkpoint
from moleblend_plugin.embeddings import MoleculeEmbedder
from moleblend_plugin.errors import UserError
from moleblend_plugin.inference import MoleBlendPredictor

SMILES = ["CCO", "c1ccccc1O", "not a smiles", "CC(=O)Nc1ccc(O)cc1", "C"]


def test_graph_token_of_a_finetuned_model_is_what_its_predictor_embeds():
    checkpoint = classification_checkpoint()
    embedded = MoleculeEmbedder.from_checkpoint(checkpoint).embed(SMILES)
    predicted = MoleBlendPredictor.from_checkpoint(checkpoint).embed(SMILES)
    assert embedded.errors == predicted.errors and embedded.errors[2].startswith("invalid_smiles")
    np.testing.assert_allclose(embedded.graph_token, predicted.values, atol=1e-6, equal_nan=True)


def test_atom_rows_follow_the_input_atom_order_and_average_to_the_atom_mean():
    result = MoleculeEmbedder.from_checkpoint(pretrain_checkpoint()).embed(SMILES, atoms=True)
    for k, smiles in enumerate(SMILES):
        if result.errors[k]:
            assert result.atoms[k] is None and np.isnan(result.graph_token[k]).all()
            continue
        elements = [atom.GetAtomicNum() for atom in Chem.MolFromSmiles(smiles).GetAtoms()]
        assert result.atomic_numbers[k].tolist() == elements
        assert result.atoms[k].shape == (len(elements), result.graph_token.shape[1])
        np.testing.assert_allclose(result.atoms[k].mean(0), result.atom_mean[k], atol=1e-5)


def test_a_molecule_embeds_the_same_alone_and_in_a_padded_batch():
    embedder = MoleculeEmbedder.from_checkpoint(pretrain_checkpoint(), batch_size=8)
    together = embedder.embed(SMILES)
    for k, smiles in enumerate(SMILES):
        alone = embedder.embed([smiles])
        np.testing.assert_allclose(alone.graph_token[0], together.graph_token[k], atol=2e-5, equal_nan=True)


def _sdf_molecules():
    return [m for m in Chem.SDMolSupplier(os.path.join(FIXTURES, "small.sdf"), removeHs=False)]


def test_3d_embeddings_use_the_sdf_geometry_and_do_not_move_with_a_rigid_motion():
    embedder = MoleculeEmbedder.from_checkpoint(pretrain_checkpoint(), input_modality="2d+3d")
    molecules = _sdf_molecules()
    moved = []
    for mol in molecules:
        copy = Chem.Mol(mol)
        angle = np.deg2rad(40.0)
        transform = np.array([[np.cos(angle), -np.sin(angle), 0, 1.5], [np.sin(angle), np.cos(angle), 0, -2.0],
                              [0, 0, 1, 0.7], [0, 0, 0, 1]])
        rdMolTransforms.TransformConformer(copy.GetConformer(), transform)
        moved.append(copy)
    first, second = embedder.embed(molecules), embedder.embed(moved)
    assert not any(first.errors)
    rigid = np.abs(first.graph_token - second.graph_token).max()
    assert rigid < 2e-5
    # the geometry is used: another conformer changes the 3D embedding (after a few
    # updates the 3D bias is still small), and not the 2D one
    stretched = []
    for mol in molecules:
        copy = Chem.Mol(mol)
        conformer = copy.GetConformer()
        for i in range(copy.GetNumAtoms()):
            conformer.SetAtomPosition(i, conformer.GetAtomPosition(i) * 1.3)
        stretched.append(copy)
    assert np.abs(embedder.embed(stretched).graph_token - first.graph_token).max() > 20 * max(rigid, 1e-6)
    flat = MoleculeEmbedder.from_checkpoint(pretrain_checkpoint(), input_modality="2d")
    np.testing.assert_allclose(flat.embed(stretched).graph_token, flat.embed(molecules).graph_token, atol=1e-6)


def test_a_3d_finetuned_model_embeds_smiles_through_an_rdkit_conformer():
    embedder = MoleculeEmbedder.from_checkpoint(regression_checkpoint())
    assert embedder.input_modality == "2d+3d"
    result = embedder.embed(["CCO", "O=C=O"])
    assert not any(result.errors) and np.isfinite(result.graph_token).all()


def test_embed_command_writes_ids_rows_and_atom_offsets(tmp_path):
    table = tmp_path / "molecules.csv"
    table.write_text("name,smiles\na,CCO\nb,not a smiles\nc,c1ccccc1O\n")
    out = tmp_path / "embeddings.npz"
    subprocess.run([sys.executable, "-m", "moleblend_cli", "embed", pretrain_checkpoint(), "--input", str(table),
                    "--id-column", "name", "--output", str(out), "--atoms"], check=True, cwd=REPO, capture_output=True)
    data = np.load(out)
    assert data["ids"].tolist() == ["a", "b", "c"]
    assert data["error"][1].startswith("invalid_smiles") and not data["error"][0]
    offsets = data["atom_offsets"]
    assert offsets.tolist() == [0, 3, 3, 10]
    assert data["atomic_numbers"][offsets[2]:offsets[3]].tolist() == [6, 6, 6, 6, 6, 6, 8]
    np.testing.assert_allclose(data["atoms"][0:3].mean(0), data["atom_mean"][0], atol=1e-5)


def test_embed_command_reads_an_sdf(tmp_path):
    out = tmp_path / "embeddings.npz"
    done = subprocess.run([sys.executable, "-m", "moleblend_cli", "embed", pretrain_checkpoint(),
                           "--input", os.path.join(FIXTURES, "small.sdf"), "--input-modality", "3d",
                           "--output", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = np.load(out)
    assert len(data["ids"]) == 10 and data["ids"][0] == "qm9_15490" and not any(data["error"])
    assert "10 embedded (3d input" in done.stderr


def test_a_checkpoint_of_another_kind_is_one_line(tmp_path):
    import torch

    path = tmp_path / "other.pt"
    torch.save({"cfg": {"model": {}, "task": {"_name": "translation"}}, "model": {}}, path)
    with pytest.raises(UserError, match="task 'translation'"):
        MoleculeEmbedder.from_checkpoint(str(path))
