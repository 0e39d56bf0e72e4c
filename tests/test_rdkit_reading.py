"""Records against RDKit's standard reading + OGB's feature functions, atom by atom and
bond by bond, with and without hydrogens, for every source that carries a geometry:
SDF files, QM9 (both layouts) and PCQM4Mv2.

The reference of a molfile is `Chem.SDMolSupplier(path, removeHs=...)`. QM9's tabular
layout has no molfile: its reference is RDKit's own reading of the XYZ geometry
(`rdDetermineBonds`), written as an SDF and read back by `SDMolSupplier`; molecules where
that reading finds other bonds or charges than QM9's SMILES are counted and left out.
"""
import csv
import gzip
import os

import numpy as np
import pytest
from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds

from data_prep.__main__ import main
from data_prep.sources.qm9 import parse_coordinates, parse_elements
from moleblend_data.molecule import Geometry
from moleblend_data.shards import MoleculeShards

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
QM9_1000 = os.path.join(FIXTURES, "qm9_1000.csv.gz")
CHIRAL_TAGS = (1, 2)  # OGB's CHI_TETRAHEDRAL_CW, CHI_TETRAHEDRAL_CCW


def build(*args):
    assert main([*args, "--quiet"]) == 0


def records_by_id(folder):
    shards = MoleculeShards(str(folder))
    return {record.id: record for record in (shards[i] for i in range(len(shards)))}


def reference_arrays(mol):
    atoms = np.array([atom_to_feature_vector(a) for a in mol.GetAtoms()], dtype=np.int64).reshape(-1, 9)
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()],
                     dtype=np.int64).reshape(-1, 2)
    bond_features = np.array([bond_to_feature_vector(b) for b in mol.GetBonds()], dtype=np.int64).reshape(-1, 3)
    return atoms, bonds, bond_features


def chirality_in_sorted_order(atom_features, bond_index):
    """OGB's chirality column with CW/CCW restated for each atom's neighbours in index
    order: RDKit's tags refer to the order of the atom's bonds, which differs between two
    readings of the same molecule whose bonds are listed in another order."""
    chirality = atom_features[:, 1].astype(np.int64).copy()
    for atom in np.flatnonzero(np.isin(chirality, CHIRAL_TAGS)):
        neighbours = [int(j if i == atom else i) for i, j in bond_index if atom in (i, j)]
        order = np.argsort(neighbours)
        # parity of the permutation that sorts the neighbours
        swaps, seen = 0, [False] * len(order)
        for start in range(len(order)):
            length, k = 0, start
            while not seen[k]:
                seen[k], k, length = True, order[k], length + 1
            swaps += max(length - 1, 0)
        if swaps % 2:
            chirality[atom] = 3 - chirality[atom]
    return chirality


def bond_table(bond_index, bond_features):
    return {tuple(sorted(map(int, pair))): tuple(map(int, f)) for pair, f in zip(bond_index, bond_features)}


def assert_same(record, mol, where, exact_bond_order=True):
    """record holds mol's atoms in mol's order, with the same features, bonds and coordinates."""
    atoms, bonds, bond_features = reference_arrays(mol)
    assert record.num_atoms == mol.GetNumAtoms(), where
    if exact_bond_order:
        np.testing.assert_array_equal(record.atom_features, atoms, err_msg=where)
        np.testing.assert_array_equal(record.bond_index, bonds, err_msg=where)
        np.testing.assert_array_equal(record.bond_features, bond_features, err_msg=where)
    else:
        others = [c for c in range(9) if c != 1]
        np.testing.assert_array_equal(record.atom_features[:, others], atoms[:, others], err_msg=where)
        np.testing.assert_array_equal(chirality_in_sorted_order(record.atom_features, record.bond_index),
                                      chirality_in_sorted_order(atoms, bonds), err_msg=where)
        assert bond_table(record.bond_index, record.bond_features) == bond_table(bonds, bond_features), where
    if mol.GetNumConformers() and record.geometry == Geometry.SOURCE:
        np.testing.assert_allclose(record.coordinates[0], mol.GetConformer().GetPositions(), atol=1e-4,
                                   err_msg=where)


def supplier(path, with_hydrogens):
    """RDKit's standard reading; a file without hydrogens gets them added for the
    all-atom graph (they are nodes then too), placed from the heavy atoms."""
    for mol in Chem.SDMolSupplier(path, removeHs=not with_hydrogens):
        if with_hydrogens:
            mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
        yield mol


@pytest.mark.parametrize("with_hydrogens", [False, True])
def test_sdf_records_are_rdkits_reading(tmp_path, with_hydrogens):
    path = f"{FIXTURES}/small.sdf"
    flags = ["--with-hydrogens"] if with_hydrogens else []
    build("sdf", "--input", path, "--output", str(tmp_path / "s"), "--conformers", "0", *flags)
    records = records_by_id(tmp_path / "s")
    mols = list(supplier(path, with_hydrogens))
    assert len(records) == len(mols) == 10
    for mol in mols:
        record = records[mol.GetProp("_Name")]
        assert_same(record, mol, mol.GetProp("_Name"))
        flat = mol.GetNumConformers() and not np.abs(mol.GetConformer().GetPositions()[:, 2]).any()
        assert record.geometry == (Geometry.NONE if flat else Geometry.SOURCE)


@pytest.mark.parametrize("with_hydrogens", [False, True])
def test_qm9_gdb9_records_are_rdkits_reading(tmp_path, with_hydrogens):
    path = f"{FIXTURES}/gdb9/gdb9.sdf"
    flags = ["--with-hydrogens"] if with_hydrogens else []
    build("qm9", "--input", path, "--output", str(tmp_path / "g"), "--valid-size", "2", "--test-size", "2", *flags)
    records = records_by_id(tmp_path / "g")
    mols = list(supplier(path, with_hydrogens))
    assert len(records) == len(mols) - 1  # one is listed in uncharacterized.txt
    for mol in mols:
        if mol.GetProp("_Name") in records:
            assert_same(records[mol.GetProp("_Name")], mol, mol.GetProp("_Name"), exact_bond_order=False)


@pytest.mark.parametrize("with_hydrogens", [False, True])
def test_pcqm4mv2_records_take_the_sdf_geometry_and_stereo(tmp_path, with_hydrogens):
    """Train molecules join the csv's SMILES with the SDF geometry (atoms shuffled in the
    fixture, half of the records without hydrogens): atom order, coordinates and stereo
    are the SDF's; bonds are listed in the SMILES' order, hence the order-free check."""
    flags = ["--with-hydrogens"] if with_hydrogens else []
    build("pcqm4mv2", "--root", f"{FIXTURES}/pcqm4mv2", "--output", str(tmp_path / "p"), "--conformers", "0", *flags)
    records = records_by_id(tmp_path / "p")
    mols = list(supplier(f"{FIXTURES}/pcqm4mv2/pcqm4m-v2-train.sdf", with_hydrogens))
    assert len(mols) == 20
    for idx, mol in enumerate(mols):
        record = records[str(idx)]
        assert record.geometry == Geometry.SOURCE
        if with_hydrogens and not any(a.GetAtomicNum() == 1 for a in Chem.SDMolSupplier(
                f"{FIXTURES}/pcqm4mv2/pcqm4m-v2-train.sdf", removeHs=False)[idx].GetAtoms()):
            # hydrogens the file does not hold are placed by RDKit in both readings, but
            # from differently ordered neighbours: compare the heavy atoms' positions only
            heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
            np.testing.assert_allclose(record.coordinates[0][heavy], mol.GetConformer().GetPositions()[heavy],
                                       atol=1e-4)
            mol = Chem.Mol(mol)
            mol.RemoveAllConformers()
        assert_same(record, mol, f"pcqm4mv2 {idx}", exact_bond_order=False)


def qm9_rows():
    csv.field_size_limit(1 << 30)
    with gzip.open(QM9_1000, "rt", newline="") as f:
        return list(csv.DictReader(f))


def qm9_reference_sdf(rows, path):
    """RDKit's reading of each QM9 XYZ geometry (bonds and charges from the coordinates),
    as an SDF; the Index of each molecule whose reading agrees with QM9's SMILES."""
    RDLogger.DisableLog("rdApp.*")
    writer, agreed = Chem.SDWriter(str(path)), []
    for row in rows:
        xyz = np.asarray(parse_coordinates(row["XYZ_Ang"])).reshape(-1, 3)
        block = "\n".join([str(len(xyz)), ""] + [f"{e} {x:.10f} {y:.10f} {z:.10f}" for e, (x, y, z)
                                                  in zip(parse_elements(row["Elements"]), xyz)]) + "\n"
        mol = Chem.MolFromXYZBlock(block)
        smiles_mol = Chem.MolFromSmiles(row["SMILES"])
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=Chem.GetFormalCharge(smiles_mol))
        except Exception:  # RDKit cannot assign bonds to some strained cages
            continue
        same = (Chem.MolToSmiles(Chem.RemoveAllHs(mol), isomericSmiles=False)
                == Chem.MolToSmiles(smiles_mol, isomericSmiles=False))
        if same:
            mol.SetProp("_Name", row["Index"])
            writer.write(mol)
            agreed.append(row["Index"])
    writer.close()
    return agreed


# Carboxylates whose two oxygens are alike in the graph: the record charges the oxygen
# the SMILES charges, RDKit's bond perception the one with the longer bond. Both are the
# same molecule; only which of two equivalent atoms carries the charge differs.
OTHER_RESONANCE_FORM = {"10349"}


@pytest.mark.parametrize("with_hydrogens", [False, True])
def test_qm9_tabular_records_are_rdkits_reading_of_the_geometry(tmp_path, with_hydrogens):
    rows = qm9_rows()
    assert len(rows) == 1000
    agreed = qm9_reference_sdf(rows, tmp_path / "reference.sdf")
    # RDKit's bond perception from coordinates fails on strained cages, whose short
    # non-bonded contacts it takes for bonds (60 of these 1,000): no reference for those.
    assert len(agreed) >= 930
    flags = ["--with-hydrogens"] if with_hydrogens else []
    build("qm9", "--input", QM9_1000, "--output", str(tmp_path / "q"), "--valid-size", "100",
          "--test-size", "100", *flags)
    records = records_by_id(tmp_path / "q")
    manifest = MoleculeShards(str(tmp_path / "q")).manifest
    # every molecule is built, the single heavy atoms and the flat linear ones included
    assert manifest["num_molecules"] == 1000 and manifest["num_rejected"] == 0
    for index in ("1", "2", "3"):
        assert records[index].num_atoms == (1 if not with_hydrogens else {"1": 5, "2": 4, "3": 3}[index])
    for mol in supplier(str(tmp_path / "reference.sdf"), with_hydrogens):
        if mol.GetProp("_Name") not in OTHER_RESONANCE_FORM:
            assert_same(records[mol.GetProp("_Name")], mol, mol.GetProp("_Name"), exact_bond_order=False)
    # with hydrogens, the atoms are in the XYZ's order
    if with_hydrogens:
        element = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
        for row in rows:
            expected = [element[e] for e in parse_elements(row["Elements"])]
            assert records[row["Index"]].atomic_numbers.tolist() == expected
            np.testing.assert_allclose(records[row["Index"]].coordinates[0],
                                       np.reshape(parse_coordinates(row["XYZ_Ang"]), (-1, 3)), atol=1e-5)


def test_imine_hydrogen_that_defines_stereo_is_in_graph_and_geometry(tmp_path):
    """QM9 102011: RDKit keeps the hydrogen of C=N-H that fixes E/Z; it is a graph node
    with its own DFT coordinates, and the bond carries the geometry's stereo."""
    build("qm9", "--input", QM9_1000, "--output", str(tmp_path / "q"), "--valid-size", "100", "--test-size", "100")
    record = records_by_id(tmp_path / "q")["102011"]
    row = next(r for r in qm9_rows() if r["Index"] == "102011")
    elements = parse_elements(row["Elements"])
    # CCN(C=N)C(=N)C=O: nine heavy atoms and the hydrogens of its two imines
    assert record.atomic_numbers.tolist().count(1) == 2
    assert record.num_atoms == sum(e != "H" for e in elements) + 2 == 11
    xyz = np.reshape(parse_coordinates(row["XYZ_Ang"]), (-1, 3))
    for position in record.coordinates[0]:
        assert np.min(np.linalg.norm(xyz - position, axis=1)) < 1e-5
    assert sum(f[1] in (1, 2) for f in record.bond_features) == 2  # STEREOZ or STEREOE


def test_a_molfile_declaring_3d_with_flat_coordinates_is_2d(tmp_path):
    """A depiction saved with a 3D header (every z = 0) is not a geometry: the record gets
    RDKit conformers like a SMILES, and its stereo comes from the wedges."""
    mol = Chem.MolFromSmiles("C[C@H](N)C(=O)O")  # L-alanine
    Chem.rdDepictor.Compute2DCoords(mol)
    Chem.WedgeMolBonds(mol, mol.GetConformer())
    mol.GetConformer().Set3D(True)
    block = Chem.MolToMolBlock(mol)
    assert " 3D" in block.split("\n")[1] or "3D" in block.split("\n")[1]
    (tmp_path / "flat.sdf").write_text(block + "$$$$\n")
    build("sdf", "--input", str(tmp_path / "flat.sdf"), "--output", str(tmp_path / "out"), "--conformers", "1")
    record = next(iter(records_by_id(tmp_path / "out").values()))
    assert record.geometry == Geometry.RDKIT_3D
    assert np.ptp(record.coordinates[0][:, 2]) > 0.1
    reference = Chem.MolFromSmiles("C[C@H](N)C(=O)O")
    expected = reference.GetAtomWithIdx(1).GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED
    assert expected and record.atom_features[1, 1] in CHIRAL_TAGS
