"""OGB atom and bond features of an RDKit molecule.

The vocabularies are OGB's (`ogb.utils.features`), so that embedding tables of
Graphormer / Transformer-M checkpoints index the same values. The features are read with
the RDKit getters OGB's `atom_to_feature_vector` / `bond_to_feature_vector` call, one
getter over all atoms at a time, and mapped to OGB's indices through dictionaries built
from OGB's own value lists (`ATOM_COLUMNS`, `BOND_COLUMNS`); tests compare the result
with OGB's functions.
"""
from __future__ import annotations

import numpy as np
from ogb.utils.features import (allowable_features, atom_to_feature_vector, bond_to_feature_vector,
                                safe_index)
from rdkit import Chem
from rdkit.Chem import rdqueries

from .molecule import NUM_ATOM_FEATURES, NUM_BOND_FEATURES


class OgbIndex(dict):
    """OGB's index of every value of one feature column, by value. A value OGB's list lacks
    takes its last ("misc") entry, as OGB's `safe_index` does, or raises KeyError where OGB
    looks the value up with `list.index` (and so raises too)."""

    def __init__(self, entries: dict, misc: int | None):
        super().__init__(entries)
        self.misc = misc

    def __missing__(self, value):
        if self.misc is None:
            raise KeyError(value)
        return self.misc


class OgbColumns:
    """OGB's feature vectors of atoms (or bonds), one RDKit getter over all of them at a time.

    Each column is (getter, OGB's list of values, the RDKit enum the getter returns or None,
    how OGB looks the value up). Enum values are looked up by their name, as OGB does
    (`str(enum)`); integers and booleans by value. "safe": OGB's `safe_index`; "strict":
    `list.index`, on a value OGB's list lacks `indices` calls OGB's own function, which raises.
    """

    def __init__(self, columns, ogb_function):
        self.getters = [getter for getter, _, _, _ in columns]
        self.ogb_function = ogb_function
        self.indexes = []
        for _, choices, enum, lookup in columns:
            misc = len(choices) - 1 if lookup == "safe" else None
            if enum is not None:
                names = {value: str(member) for value, member in enum.values.items()}
                entries = {value: safe_index(choices, name) for value, name in names.items()
                           if lookup == "safe" or name in choices}
            else:
                entries = {value: choices.index(value) for value in choices if value != "misc"}
            self.indexes.append(OgbIndex(entries, misc))

    def indices(self, objects: list, known: dict | None = None) -> np.ndarray:
        """int16 [len(objects), columns]: OGB's feature vector of every atom (or bond).
        known: {getter: the value it returns for every one of `objects`}, not called."""
        known = known or {}
        try:
            columns = [[index[known[getter]]] * len(objects) if getter in known
                       else list(map(index.__getitem__, map(getter, objects)))
                       for getter, index in zip(self.getters, self.indexes)]
        except KeyError:
            # A value OGB's list lacks where OGB raises: OGB's own function, and its error.
            return np.array([self.ogb_function(x) for x in objects], dtype=np.int16)
        return np.array(columns, dtype=np.int16).T.copy()


_lists = allowable_features
ATOM_COLUMNS = OgbColumns([
    (Chem.Atom.GetAtomicNum, _lists["possible_atomic_num_list"], None, "safe"),
    (Chem.Atom.GetChiralTag, _lists["possible_chirality_list"], Chem.ChiralType, "safe"),
    (Chem.Atom.GetTotalDegree, _lists["possible_degree_list"], None, "safe"),
    (Chem.Atom.GetFormalCharge, _lists["possible_formal_charge_list"], None, "safe"),
    (Chem.Atom.GetTotalNumHs, _lists["possible_numH_list"], None, "safe"),
    (Chem.Atom.GetNumRadicalElectrons, _lists["possible_number_radical_e_list"], None, "safe"),
    (Chem.Atom.GetHybridization, _lists["possible_hybridization_list"], Chem.HybridizationType, "safe"),
    (Chem.Atom.GetIsAromatic, _lists["possible_is_aromatic_list"], None, "strict"),
    (Chem.Atom.IsInRing, _lists["possible_is_in_ring_list"], None, "strict"),
], atom_to_feature_vector)
BOND_COLUMNS = OgbColumns([
    (Chem.Bond.GetBondType, _lists["possible_bond_type_list"], Chem.BondType, "safe"),
    (Chem.Bond.GetStereo, _lists["possible_bond_stereo_list"], Chem.BondStereo, "strict"),
    (Chem.Bond.GetIsConjugated, _lists["possible_is_conjugated_list"], None, "strict"),
], bond_to_feature_vector)


# Matches the atoms whose chiral tag is not CHI_UNSPECIFIED.
_HAS_CHIRAL_TAG = rdqueries.HasChiralTagQueryAtom()


def _has_atomic_number_below_2(mol: Chem.Mol) -> bool:
    """Whether `mol` has a hydrogen or a dummy atom (RDKit counts neither as heavy)."""
    return mol.GetNumHeavyAtoms() != mol.GetNumAtoms()


def has_wildcard_atom(mol: Chem.Mol) -> bool:
    """Whether `mol` has a '*' (dummy, atomic number 0) atom."""
    return _has_atomic_number_below_2(mol) and any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms())


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
    if _has_atomic_number_below_2(mol) and any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms()):
        return Chem.RemoveHs(mol)
    return mol


def featurize_mol(mol: Chem.Mol):
    """Return (atom_features int16 [N, 9], bond_index int32 [E, 2], bond_features int16 [E, 3])
    of the atoms and bonds of `mol` (a graph molecule, see `graph_mol`).

    Each chemical bond appears once in `bond_index`, as (begin atom, end atom), in RDKit's
    bond order (the order OGB's chirality tags refer to).
    """
    atoms = list(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))
    bonds = list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
    # Most molecules have no chiral tag: one query instead of a call per atom.
    known = None if len(mol.GetAtomsMatchingQuery(_HAS_CHIRAL_TAG)) else {
        Chem.Atom.GetChiralTag: Chem.ChiralType.CHI_UNSPECIFIED}
    atom_features = ATOM_COLUMNS.indices(atoms, known).reshape(-1, NUM_ATOM_FEATURES)
    bond_index = np.array([list(map(Chem.Bond.GetBeginAtomIdx, bonds)), list(map(Chem.Bond.GetEndAtomIdx, bonds))],
                          dtype=np.int32).T.reshape(-1, 2).copy()
    bond_features = BOND_COLUMNS.indices(bonds).reshape(-1, NUM_BOND_FEATURES)
    return atom_features, bond_index, bond_features
