"""Atom and bond features against OGB's own smiles2graph, on real molecules."""
import os

import numpy as np
import pandas as pd
import pytest
from ogb.utils import smiles2graph
from rdkit import Chem

from moleblend_data.features import featurize_mol, graph_mol

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def real_smiles():
    return pd.read_csv(os.path.join(FIXTURES, "molecules.csv"))["smiles"].tolist()


def test_fixture_has_at_least_100_molecules():
    assert len(real_smiles()) >= 100


def test_equal_to_ogb_smiles2graph():
    compared = 0
    for smiles in real_smiles():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            continue
        graph = smiles2graph(smiles)
        atoms, bond_index, bonds = featurize_mol(mol)
        np.testing.assert_array_equal(atoms, graph["node_feat"], err_msg=smiles)
        # OGB lists each bond twice, (i, j) then (j, i); here each bond once as (i, j).
        np.testing.assert_array_equal(bond_index, graph["edge_index"][:, ::2].T, err_msg=smiles)
        np.testing.assert_array_equal(bonds, graph["edge_feat"][::2], err_msg=smiles)
        assert atoms.dtype == np.int16 and bond_index.dtype == np.int32 and bonds.dtype == np.int16
        compared += 1
    assert compared >= 100


def test_hydrogens_on_a_flag():
    mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")  # aspirin, C9H8O4
    heavy, _, _ = featurize_mol(graph_mol(mol))
    with_h, bond_index, _ = featurize_mol(graph_mol(mol, with_hydrogens=True))
    assert heavy.shape[0] == 13 and with_h.shape[0] == 21
    np.testing.assert_array_equal(with_h[:13, 0], heavy[:, 0])  # heavy atoms first, same order
    assert (with_h[13:, 0] == 0).all()  # atomic number 1 -> OGB index 0
    assert bond_index.shape[0] == 13 + 8


def test_explicit_hydrogens_removed_by_default():
    mol_h = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1O"))
    atoms, _, _ = featurize_mol(graph_mol(mol_h))
    np.testing.assert_array_equal(atoms, smiles2graph("c1ccccc1O")["node_feat"])
    assert graph_mol(mol_h).GetNumAtoms() == 7


def test_single_fragment_features_independent_of_counter_ion():
    salt, _, _ = featurize_mol(Chem.MolFromSmiles("CC(=O)[O-].[Na+]"))
    assert salt.shape == (5, 9)
    assert salt[4, 0] == 10  # sodium: atomic number 11


@pytest.mark.parametrize("smiles", ["CCC1=[O+][Cu-3]2([O+]=C(CC)C1)[O+]=C(CC)CC(CC)=[O+]2"])
def test_metal_complex_featurizes(smiles):
    atoms, _, _ = featurize_mol(Chem.MolFromSmiles(smiles))
    assert 28 in atoms[:, 0]  # copper


@pytest.mark.parametrize("smiles", [
    "[CH2]C", "[CH]", "[O-2].[Ca+2]", "[Fe+3]", "C[N+](C)(C)C", "[U]", "[Zn+2].[Cl-].[Cl-]", "F[S](F)(F)(F)(F)F",
    "[Pt](N)(N)(Cl)Cl", "C/C=C/C", "C[C@H](N)C(=O)O", "c1ccccc1C#N", "[SiH4]", "[2H]C", "P(=O)(O)(O)O",
    "[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1", "[Au+]", "B(F)(F)F",
])
def test_unusual_values_map_as_ogb_maps_them(smiles):
    """Charges, radicals, hypervalent atoms, metals, isotopes: values OGB lists and values
    it sends to its 'misc' entries."""
    mol = Chem.MolFromSmiles(smiles)
    assert mol is not None, smiles
    graph = smiles2graph(smiles)
    atoms, _, bonds = featurize_mol(mol)
    np.testing.assert_array_equal(atoms, graph["node_feat"], err_msg=smiles)
    np.testing.assert_array_equal(bonds, graph["edge_feat"][::2], err_msg=smiles)
