"""OGB atom and bond features of an RDKit molecule.

The vocabularies are OGB's (`ogb.utils.features`), so that embedding tables of
Graphormer / Transformer-M checkpoints index the same values.
"""
from __future__ import annotations

import numpy as np
from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector
from rdkit import Chem

from .molecule import NUM_ATOM_FEATURES, NUM_BOND_FEATURES


def graph_mol(mol: Chem.Mol, with_hydrogens: bool = False) -> Chem.Mol:
    """The molecule whose atoms become the graph's nodes, with `mol`'s conformers.

    Heavy atoms only by default: the hydrogens RDKit's default `RemoveHs` removes are
    removed, as `Chem.MolFromSmiles` and `Chem.SDMolSupplier(removeHs=True)` do; the
    hydrogens it keeps (those that define a double bond's stereo, isotopes) stay nodes.
    A molecule parsed by `Chem.MolFromSmiles` is returned unchanged, so the graph equals
    OGB's `smiles2graph`. With hydrogens, every hydrogen is a node: hydrogens already in
    `mol` keep their place, missing ones are added after the other atoms (placed from
    the neighbours' coordinates when `mol` has a conformer).
    """
    if with_hydrogens:
        return Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0)
    if any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms()):
        return Chem.RemoveHs(mol)
    return mol


def featurize_mol(mol: Chem.Mol):
    """Return (atom_features int16 [N, 9], bond_index int32 [E, 2], bond_features int16 [E, 3])
    of the atoms and bonds of `mol` (a graph molecule, see `graph_mol`).

    Each chemical bond appears once in `bond_index`, as (begin atom, end atom), in RDKit's
    bond order (the order OGB's chirality tags refer to).
    """
    atom_features = np.array([atom_to_feature_vector(atom) for atom in mol.GetAtoms()],
                             dtype=np.int16).reshape(-1, NUM_ATOM_FEATURES)
    bonds = list(mol.GetBonds())
    bond_index = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds],
                          dtype=np.int32).reshape(-1, 2)
    bond_features = np.array([bond_to_feature_vector(b) for b in bonds],
                             dtype=np.int16).reshape(-1, NUM_BOND_FEATURES)
    return atom_features, bond_index, bond_features
