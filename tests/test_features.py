"""Atom and bond features against OGB's own smiles2graph, on real molecules."""
import os

import numpy as np
import pandas as pd
import pytest
from ogb.utils import smiles2graph
from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector
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


def ogb_arrays(mol):
    atoms = np.array([atom_to_feature_vector(a) for a in mol.GetAtoms()]).reshape(-1, 9)
    bonds = np.array([bond_to_feature_vector(b) for b in mol.GetBonds()]).reshape(-1, 3)
    return atoms, bonds


def test_every_rdkit_value_indexed_as_ogb_indexes_it():
    # One atom per chiral tag and hybridization RDKit defines, charges, hydrogen counts,
    # radicals and degrees beyond OGB's lists (its "misc" entries), and one bond per bond
    # type; the values are set by hand, so the molecule is not sanitized.
    chiral_tags = list(Chem.ChiralType.values.values())
    hybridizations = list(Chem.HybridizationType.values.values())
    bond_types = list(Chem.BondType.values.values())
    size = max(len(chiral_tags), len(hybridizations), len(bond_types) + 1, 14)
    mol = Chem.RWMol()
    for k in range(size):
        atom = Chem.Atom([6, 7, 8, 26, 92, 0][k % 6])
        atom.SetChiralTag(chiral_tags[k % len(chiral_tags)])
        atom.SetHybridization(hybridizations[k % len(hybridizations)])
        atom.SetFormalCharge(k - 7)  # -7 ... +6
        atom.SetNumExplicitHs(k % 11)  # up to 10 hydrogens
        atom.SetNumRadicalElectrons(k % 7)  # up to 6
        atom.SetNoImplicit(True)
        mol.AddAtom(atom)
    for k, bond_type in enumerate(bond_types):
        mol.AddBond(k, k + 1, bond_type)
    for k in range(2, 14):  # degree 12 for atom 0 (13 with its hydrogens)
        if mol.GetBondBetweenAtoms(0, k) is None:
            mol.AddBond(0, k, Chem.BondType.SINGLE)
    stereos = [Chem.BondStereo.STEREONONE, Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOE,
               Chem.BondStereo.STEREOCIS, Chem.BondStereo.STEREOTRANS, Chem.BondStereo.STEREOANY]
    for k, bond in enumerate(mol.GetBonds()):
        bond.SetIsConjugated(k % 2 == 0)
        begin, end = bond.GetBeginAtom(), bond.GetEndAtom()
        outer = [[n.GetIdx() for n in atom.GetNeighbors() if n.GetIdx() != other.GetIdx()]
                 for atom, other in ((begin, end), (end, begin))]
        if all(outer):  # CIS and TRANS need a reference atom on each side
            bond.SetStereoAtoms(outer[0][0], outer[1][0])
            bond.SetStereo(stereos[k % len(stereos)])
        begin.SetIsAromatic(k % 3 == 0)
    Chem.FastFindRings(mol)
    atoms, bond_index, bonds = featurize_mol(mol)
    expected_atoms, expected_bonds = ogb_arrays(mol)
    np.testing.assert_array_equal(atoms, expected_atoms)
    np.testing.assert_array_equal(bonds, expected_bonds)
    # the values beyond OGB's lists are there
    for column in (1, 2, 3, 4, 5, 6):
        assert (atoms[:, column] == expected_atoms[:, column].max()).any()
    assert set(expected_atoms[:, 3]) >= {0, 11} and expected_bonds[:, 0].max() == 4
    assert set(expected_bonds[:, 1]) == set(range(6))


def test_bond_stereo_missing_from_ogb_raises_as_ogb():
    # OGB looks bond stereo up with list.index: a stereo value its list lacks raises.
    mol = Chem.MolFromSmiles("CC(C)c1ccccc1-c1ccccc1C(C)C")
    bond = mol.GetBondWithIdx(9)
    bond.SetStereo(Chem.BondStereo.STEREOATROPCW)
    with pytest.raises(ValueError) as ogb_error:
        bond_to_feature_vector(bond)
    with pytest.raises(ValueError) as ours:
        featurize_mol(mol)
    assert str(ours.value) == str(ogb_error.value)


def test_chiral_molecules_keep_their_tags():
    for smiles in ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "F/C=C/[C@@H](Cl)Br", "CC(N)C(=O)O"]:
        mol = Chem.MolFromSmiles(smiles)
        atoms, _, _ = featurize_mol(mol)
        np.testing.assert_array_equal(atoms, ogb_arrays(mol)[0], err_msg=smiles)
