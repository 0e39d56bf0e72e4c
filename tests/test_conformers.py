"""Conformer generation, the 2D fallback, and joining a SMILES to a given geometry."""
import numpy as np
import pytest
from rdkit import Chem

from moleblend_data.conformers import ConformerError, generate_conformers
from moleblend_data.featurize import FeaturizeOptions, RejectedMolecule, make_record
from moleblend_data.geometry import GeometryMismatch, mol_from_xyz, with_source_geometry
from moleblend_data.molecule import Geometry

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def bond_lengths(mol, xyz):
    return np.array([np.linalg.norm(xyz[b.GetBeginAtomIdx()] - xyz[b.GetEndAtomIdx()])
                     for b in mol.GetBonds()])


def test_conformers_shape_seed_and_chemistry():
    mol = Chem.MolFromSmiles(ASPIRIN)
    first = generate_conformers(mol, 2, seed=3)
    again = generate_conformers(mol, 2, seed=3)
    other = generate_conformers(mol, 2, seed=4)
    assert first.shape == (2, 13, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    lengths = bond_lengths(mol, first[0])
    assert lengths.min() > 1.1 and lengths.max() < 1.6  # heavy-atom bonds in Angstrom
    assert np.ptp(first[0][:, 2]) > 0.5  # really 3D


def test_conformers_with_hydrogens_follow_feature_order():
    mol = Chem.MolFromSmiles("CCO")
    mol_h = Chem.AddHs(mol)
    xyz = generate_conformers(mol_h, 1, seed=0)[0]
    assert xyz.shape == (9, 3)
    lengths = bond_lengths(mol_h, xyz)
    assert lengths.min() > 0.9 and lengths.max() < 1.6


def test_timeout_raises_and_fallback_flag():
    mol = Chem.MolFromSmiles(ASPIRIN)
    with pytest.raises(ConformerError):
        generate_conformers(mol, 1, seed=0, timeout_s=0)
    options = FeaturizeOptions(num_conformers=2, conformer_timeout_s=0, on_conformer_failure="reject")
    with pytest.raises(RejectedMolecule) as error:
        make_record(ASPIRIN, options)
    assert error.value.reason == "conformer_failed"
    options.on_conformer_failure = "2d"
    record = make_record(ASPIRIN, options)
    assert record.geometry == Geometry.FALLBACK_2D
    assert record.coordinates.shape == (2, 13, 3) and (record.coordinates[..., 2] == 0).all()


def test_timeout_on_a_hard_molecule_is_a_conformer_error():
    # A lipopeptide from Lipophilicity that ETKDG does not embed within 10 s; when the
    # time runs out mid-embedding, RDKit's return value must not be trusted.
    smiles = ("CCCCCCCCCC(=O)N[C@@H](Cc1c[nH]c2ccccc12)C(=O)N[C@@H](CC(=O)N)C(=O)N[C@@H](CC(=O)O)"
              "C(=O)N[C@H]3[C@@H](C)OC(=O)[C@H](CC(=O)c4ccccc4N)NC(=O)[C@@H](NC(=O)[C@@H](CO)NC(=O)"
              "CNC(=O)[C@H](CC(=O)O)NC(=O)[C@@H](C)NC(=O)[C@H](CC(=O)O)NC(=O)[C@H](CCCN)NC(=O)CNC3=O)"
              "[C@H](C)CC(=O)O")
    mol = Chem.MolFromSmiles(smiles)
    try:
        xyz = generate_conformers(mol, 1, seed=3592, timeout_s=1)
        assert xyz.shape == (1, mol.GetNumAtoms(), 3)
    except ConformerError:
        pass


def test_two_dimensional_dataset():
    record = make_record(ASPIRIN, FeaturizeOptions(num_conformers=0))
    assert record.coordinates.shape == (0, 13, 3) and record.geometry == Geometry.NONE


def test_source_geometry_gives_atom_order_and_coordinates():
    mol = Chem.MolFromSmiles("OCC(=O)N")
    mol_h = Chem.AddHs(mol)
    xyz_h = generate_conformers(mol_h, 1, seed=1)[0]
    order = np.random.default_rng(0).permutation(len(xyz_h))
    elements = [mol_h.GetAtomWithIdx(int(i)).GetSymbol() for i in order]
    joined = with_source_geometry(mol, mol_from_xyz(elements, xyz_h[order]))
    assert [a.GetSymbol() for a in joined.GetAtoms()] == elements
    np.testing.assert_allclose(joined.GetConformer().GetPositions(), xyz_h[order], atol=1e-6)
    # every bond of the SMILES joins the same two atoms in the geometry's order
    where = {int(old): new for new, old in enumerate(order)}
    bonds = {frozenset((where[b.GetBeginAtomIdx()], where[b.GetEndAtomIdx()])) for b in mol_h.GetBonds()}
    assert {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in joined.GetBonds()} == bonds


def test_source_geometry_sets_stereo_from_3d():
    """The SMILES states no stereo; the geometry of one enantiomer gives it."""
    chiral = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)O"))
    xyz = generate_conformers(chiral, 1, seed=0)[0]
    elements = [a.GetSymbol() for a in chiral.GetAtoms()]
    joined = with_source_geometry(Chem.MolFromSmiles("CC(N)O"), mol_from_xyz(elements, xyz))
    assert Chem.MolToSmiles(Chem.RemoveHs(joined)) == Chem.MolToSmiles(Chem.MolFromSmiles("C[C@H](N)O"))
    mirrored = with_source_geometry(Chem.MolFromSmiles("CC(N)O"), mol_from_xyz(elements, xyz * [1, 1, -1]))
    assert Chem.MolToSmiles(Chem.RemoveHs(mirrored)) == Chem.MolToSmiles(Chem.MolFromSmiles("C[C@@H](N)O"))


def test_source_geometry_rejects_other_molecule():
    mol = Chem.MolFromSmiles("OCC(=O)N")
    xyz = generate_conformers(Chem.AddHs(Chem.MolFromSmiles("NCC(=O)O")), 1, seed=0)[0]
    elements = [a.GetSymbol() for a in Chem.AddHs(Chem.MolFromSmiles("NCC(=O)O")).GetAtoms()]
    with pytest.raises(GeometryMismatch):
        with_source_geometry(mol, mol_from_xyz(elements, xyz))  # same atoms, other bonds
    with pytest.raises(GeometryMismatch):
        with_source_geometry(Chem.MolFromSmiles("CCO"), mol_from_xyz(elements, xyz))


def test_single_atoms_are_kept():
    for smiles, atoms in (("C", 1), ("[Na+]", 1), ("O", 1)):
        record = make_record(smiles, FeaturizeOptions(num_conformers=1))
        assert record.num_atoms == atoms and record.coordinates.shape == (1, atoms, 3)
        with_h = make_record(smiles, FeaturizeOptions(num_conformers=1, with_hydrogens=True))
        assert with_h.num_atoms == Chem.AddHs(Chem.MolFromSmiles(smiles)).GetNumAtoms()


def test_smiles_with_whitespace_is_rejected():
    """RDKit reads what follows a space as a name: "CC O" would be featurized as ethane."""
    for text in ("CC O", "CC\nO", "CC\tO"):
        with pytest.raises(RejectedMolecule) as error:
            make_record(text, FeaturizeOptions(num_conformers=0))
        assert error.value.reason == "invalid_smiles"
    assert make_record("  CCO  ", FeaturizeOptions(num_conformers=0)).num_atoms == 3


def test_reject_reasons():
    options = FeaturizeOptions(num_conformers=0, max_atoms=10)
    cases = {"C1CC": "invalid_smiles", "c1cccc1": "invalid_smiles", "": "invalid_smiles",
             "*CC": "wildcard_atom", ASPIRIN: "too_many_atoms"}
    for smiles, reason in cases.items():
        with pytest.raises(RejectedMolecule) as error:
            make_record(smiles, options)
        assert error.value.reason == reason, smiles


def test_salt_kept_whole_or_largest_fragment():
    salt = "[Cl].CC(C)NCC(O)COc1cccc2ccccc12"  # from BBBP
    whole = make_record(salt, FeaturizeOptions(num_conformers=1))
    assert whole.num_atoms == 20 and whole.coordinates.shape == (1, 20, 3)
    largest = make_record(salt, FeaturizeOptions(num_conformers=0, largest_fragment=True))
    assert largest.num_atoms == 19 and "." not in largest.smiles


def test_metal_complex_kept_with_fallback():
    smiles = "CCC1=[O+][Cu-3]2([O+]=C(CC)C1)[O+]=C(CC)CC(CC)=[O+]2"  # from HIV
    record = make_record(smiles, FeaturizeOptions(num_conformers=1, conformer_timeout_s=5,
                                                  on_conformer_failure="2d"))
    assert record.geometry in (Geometry.RDKIT_3D, Geometry.FALLBACK_2D)
    assert np.isfinite(record.coordinates).all()
