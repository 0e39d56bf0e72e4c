"""SPD and edge paths: against RDKit's distance matrix, against a plain
Floyd-Warshall with path reconstruction, and on molecules checked by hand."""
import csv
import gzip
import itertools
import os

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from moleblend_data import relations
from moleblend_data.features import featurize_mol
from moleblend_data.relations import (MULTI_HOP_MAX_DIST, NO_HOP, UNREACHABLE_SPD,
                                             pair_relations)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def relations_of(smiles, **kwargs):
    mol = Chem.MolFromSmiles(smiles)
    atoms, bond_index, bonds = featurize_mol(mol)
    return mol, bond_index, bonds, pair_relations(len(atoms), bond_index, bonds, **kwargs)


def reference_paths(n, bond_index):
    """Floyd-Warshall, intermediate k in the outer loop and updates only on strictly
    shorter paths; the path i -> j is path(i, k) + k + path(k, j)."""
    inf = 10 ** 6
    dist = [[0 if i == j else inf for j in range(n)] for i in range(n)]
    via = [[-1] * n for _ in range(n)]
    for a, b in bond_index:
        dist[a][b] = dist[b][a] = 1
    for k in range(n):
        for i in range(n):
            for j in range(n):
                if dist[i][k] + dist[k][j] < dist[i][j]:
                    dist[i][j] = dist[i][k] + dist[k][j]
                    via[i][j] = k

    def inner(i, j):
        k = via[i][j]
        return [] if k == -1 else inner(i, k) + [k] + inner(k, j)

    paths = {}
    for i in range(n):
        for j in range(n):
            if i != j and dist[i][j] < inf:
                paths[i, j] = [i] + inner(i, j) + [j]
    return paths


def reference_relations(n, bond_index, bond_features, max_hops=MULTI_HOP_MAX_DIST):
    """spd and edge_path written out pair by pair from `reference_paths`."""
    paths = reference_paths(n, bond_index.tolist())
    feature_of = {}
    for (a, b), f in zip(bond_index.tolist(), bond_features.tolist()):
        feature_of[a, b] = feature_of[b, a] = f
    spd = np.full((n, n), UNREACHABLE_SPD)
    edge_path = np.full((n, n, max_hops, 3), NO_HOP)
    for i in range(n):
        spd[i, i] = 0
    for (i, j), path in paths.items():
        spd[i, j] = len(path) - 1
        for hop, (u, v) in enumerate(zip(path, path[1:])):
            if hop < max_hops:
                edge_path[i, j, hop] = feature_of[u, v]
    return spd, edge_path


def real_graphs():
    """Heavy-atom graphs of the fixture molecules (MoleculeNet, salts, a copper complex)
    and all-atom graphs of 200 QM9 molecules."""
    graphs = [featurize_mol(Chem.MolFromSmiles(s)) for s in sample_smiles(every=1)]
    with gzip.open(os.path.join(FIXTURES, "qm9_1000.csv.gz"), "rt", newline="") as f:
        for row in itertools.islice(csv.DictReader(f), 0, 1000, 5):
            graphs.append(featurize_mol(Chem.AddHs(Chem.MolFromSmiles(row["SMILES"]))))
    return graphs


@pytest.mark.parametrize("history_entries", [None, 1, 2000])
def test_relations_of_real_molecules_equal_plain_floyd_warshall(monkeypatch, history_entries):
    # history_entries: the default, one Floyd-Warshall step per block, a few steps per block.
    if history_entries is not None:
        monkeypatch.setattr(relations, "HISTORY_ENTRIES", history_entries)
    graphs = real_graphs()
    assert len(graphs) > 300 and max(len(g[0]) for g in graphs) > 50
    for atoms, bond_index, bonds in graphs:
        n = len(atoms)
        rel = pair_relations(n, bond_index, bonds)
        spd, edge_path = reference_relations(n, bond_index, bonds)
        np.testing.assert_array_equal(rel.spd, spd)
        np.testing.assert_array_equal(rel.edge_path, edge_path)
        assert rel.spd.dtype == np.int16 and rel.edge_path.dtype == np.int16


def test_no_atoms_and_no_bonds():
    for n in (0, 1, 3):
        for max_hops in (0, 1, MULTI_HOP_MAX_DIST):
            rel = pair_relations(n, np.zeros((0, 2), np.int32), np.zeros((0, 3), np.int16), max_hops)
            expected_spd = np.where(np.eye(n, dtype=bool), 0, UNREACHABLE_SPD)
            np.testing.assert_array_equal(rel.spd, expected_spd)
            assert rel.edge_path.shape == (n, n, max_hops, 3) and (rel.edge_path == NO_HOP).all()


def sample_smiles(every=4):
    frame = pd.read_csv(os.path.join(FIXTURES, "molecules.csv"))
    smiles = [s for s in frame["smiles"] if Chem.MolFromSmiles(s) is not None]
    return smiles[::every]  # a spread over all data sets, including the salt and the complex


def test_spd_equals_rdkit_distance_matrix():
    for smiles in sample_smiles():
        mol, _, _, rel = relations_of(smiles)
        expected = Chem.GetDistanceMatrix(mol)  # 1e8 for atoms in different fragments
        expected = np.where(expected >= 1e7, UNREACHABLE_SPD, expected).astype(np.int64)
        np.testing.assert_array_equal(rel.spd, expected, err_msg=smiles)


def test_edge_paths_follow_floyd_warshall_paths():
    for smiles in sample_smiles()[:12]:
        mol, bond_index, bonds, rel = relations_of(smiles)
        feature_of = {}
        for (a, b), f in zip(bond_index.tolist(), bonds.tolist()):
            feature_of[a, b] = feature_of[b, a] = f
        paths = reference_paths(mol.GetNumAtoms(), bond_index.tolist())
        n = mol.GetNumAtoms()
        for i in range(n):
            for j in range(n):
                path = paths.get((i, j), [i])
                hops = [feature_of[u, v] for u, v in zip(path, path[1:])][:MULTI_HOP_MAX_DIST]
                expected = np.full((MULTI_HOP_MAX_DIST, 3), NO_HOP)
                if hops:
                    expected[:len(hops)] = hops
                np.testing.assert_array_equal(rel.edge_path[i, j], expected, err_msg=f"{smiles} {i}->{j}")


def test_paths_through_atom_zero():
    # C(O)=N is C0, O1, N2; the path O1 -> N2 runs through atom 0. OGB bond features:
    # (type, stereo, conjugated); both bonds are conjugated here.
    _, _, _, rel = relations_of("C(O)=N")
    assert rel.spd[1, 2] == 2
    single, double = [0, 0, 1], [1, 0, 1]
    np.testing.assert_array_equal(rel.edge_path[1, 2, :2], [single, double])
    np.testing.assert_array_equal(rel.edge_path[2, 1, :2], [double, single])
    assert (rel.edge_path[1, 2, 2:] == NO_HOP).all()


def test_paths_starting_and_ending_at_atom_zero():
    # C#CC=CC: bonds triple, single, double (conjugated), then a plain single bond.
    _, _, _, rel = relations_of("C#CC=CC")
    triple, single, double, last = [2, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 0]
    assert rel.spd[0, 4] == 4 and rel.spd[4, 0] == 4
    np.testing.assert_array_equal(rel.edge_path[0, 4, :4], [triple, single, double, last])
    np.testing.assert_array_equal(rel.edge_path[4, 0, :4], [last, double, single, triple])
    assert (rel.edge_path[0, 4, 4] == NO_HOP).all()


def test_unreachable_fragments():
    _, _, _, rel = relations_of("CC(=O)[O-].[Na+]")
    assert (rel.spd[4, :4] == UNREACHABLE_SPD).all() and (rel.spd[:4, 4] == UNREACHABLE_SPD).all()
    assert rel.spd[4, 4] == 0
    assert (rel.edge_path[4, :4] == NO_HOP).all()
    assert UNREACHABLE_SPD > 2 * 222  # longer than any real path in the shared data sets


def test_long_path_keeps_first_hops_only():
    _, _, _, rel = relations_of("CCCCCCCCC=O")  # O is 9 bonds from atom 0
    assert rel.spd[0, 9] == 9
    assert (rel.edge_path[0, 9] == [0, 0, 0]).all()  # only the first 5 single bonds kept
    np.testing.assert_array_equal(rel.edge_path[9, 0, 0], [1, 0, 0])  # from O: the double bond first


@pytest.mark.parametrize("max_hops", [1, 3])
def test_max_hops(max_hops):
    _, _, _, rel = relations_of("c1ccccc1CCN", max_hops=max_hops)
    assert rel.edge_path.shape[2] == max_hops


def test_diagonal_and_dtypes():
    _, _, _, rel = relations_of("Cn1cnc2c1c(=O)n(C)c(=O)n2C")  # caffeine
    assert (np.diag(rel.spd) == 0).all()
    assert rel.spd.dtype == np.int16 and rel.edge_path.dtype == np.int16
    assert (rel.spd == rel.spd.T).all()
