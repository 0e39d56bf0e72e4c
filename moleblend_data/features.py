"""OGB atom and bond features of an RDKit molecule.

The vocabularies are OGB's (`ogb.utils.features`), so that embedding tables of
Graphormer / Transformer-M checkpoints index the same values.
"""
from __future__ import annotations

import numpy as np
from ogb.utils.features import allowable_features
from rdkit import Chem

from .molecule import NUM_ATOM_FEATURES, NUM_BOND_FEATURES


def _ogb_positions(name: str, enumeration=None) -> dict:
    """value -> OGB's index of it in `allowable_features[name]` (its first equal entry, as
    list.index finds it). For an RDKit enumeration, which OGB compares by str(value), the
    keys are the enumeration's values."""
    values = allowable_features[name]
    positions = {}
    for position, value in enumerate(values):
        positions.setdefault(value, position)
    if enumeration is None:
        return positions
    return {member: positions[str(member)] for member in enumeration.values.values() if str(member) in positions}


def _misc(name: str) -> int:
    """OGB's safe_index of a value its list lacks: the last entry."""
    return len(allowable_features[name]) - 1


def _strict(positions: dict, value, name: str) -> int:
    """OGB's plain list.index: a value the list lacks is an error."""
    try:
        return positions[value]
    except KeyError:
        raise ValueError(f"{value!r} is not in OGB's {name}") from None


_ATOMIC_NUM = _ogb_positions("possible_atomic_num_list")
_CHIRALITY = _ogb_positions("possible_chirality_list", Chem.ChiralType)
_DEGREE = _ogb_positions("possible_degree_list")
_FORMAL_CHARGE = _ogb_positions("possible_formal_charge_list")
_NUM_HS = _ogb_positions("possible_numH_list")
_RADICAL_ELECTRONS = _ogb_positions("possible_number_radical_e_list")
_HYBRIDIZATION = _ogb_positions("possible_hybridization_list", Chem.HybridizationType)
_AROMATIC = _ogb_positions("possible_is_aromatic_list")
_IN_RING = _ogb_positions("possible_is_in_ring_list")
_BOND_TYPE = _ogb_positions("possible_bond_type_list", Chem.BondType)
_BOND_STEREO = _ogb_positions("possible_bond_stereo_list", Chem.BondStereo)
_CONJUGATED = _ogb_positions("possible_is_conjugated_list")
_ATOM_MISC = tuple(_misc(name) for name in (
    "possible_atomic_num_list", "possible_chirality_list", "possible_degree_list", "possible_formal_charge_list",
    "possible_numH_list", "possible_number_radical_e_list", "possible_hybridization_list"))
_BOND_TYPE_MISC = _misc("possible_bond_type_list")


def atom_feature_row(atom: Chem.Atom) -> tuple:
    """OGB's `atom_to_feature_vector(atom)`, from dicts instead of list searches."""
    m = _ATOM_MISC
    return (_ATOMIC_NUM.get(atom.GetAtomicNum(), m[0]), _CHIRALITY.get(atom.GetChiralTag(), m[1]),
            _DEGREE.get(atom.GetTotalDegree(), m[2]), _FORMAL_CHARGE.get(atom.GetFormalCharge(), m[3]),
            _NUM_HS.get(atom.GetTotalNumHs(), m[4]), _RADICAL_ELECTRONS.get(atom.GetNumRadicalElectrons(), m[5]),
            _HYBRIDIZATION.get(atom.GetHybridization(), m[6]),
            _strict(_AROMATIC, atom.GetIsAromatic(), "possible_is_aromatic_list"),
            _strict(_IN_RING, atom.IsInRing(), "possible_is_in_ring_list"))


def bond_feature_row(bond: Chem.Bond) -> tuple:
    """OGB's `bond_to_feature_vector(bond)`."""
    return (_BOND_TYPE.get(bond.GetBondType(), _BOND_TYPE_MISC),
            _strict(_BOND_STEREO, bond.GetStereo(), "possible_bond_stereo_list"),
            _strict(_CONJUGATED, bond.GetIsConjugated(), "possible_is_conjugated_list"))


def atoms_of(mol: Chem.Mol) -> list:
    """The molecule's atoms in index order (by index: iterating `GetAtoms()` goes through a
    Python sequence wrapper that costs more than the atoms' features)."""
    return [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]


def bonds_of(mol: Chem.Mol) -> list:
    return [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]


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
    if any(atom.GetAtomicNum() == 1 for atom in atoms_of(mol)):
        return Chem.RemoveHs(mol)
    return mol


def featurize_mol(mol: Chem.Mol):
    """Return (atom_features int16 [N, 9], bond_index int32 [E, 2], bond_features int16 [E, 3])
    of the atoms and bonds of `mol` (a graph molecule, see `graph_mol`).

    Each chemical bond appears once in `bond_index`, as (begin atom, end atom), in RDKit's
    bond order (the order OGB's chirality tags refer to).
    """
    atom_features = np.array([atom_feature_row(atom) for atom in atoms_of(mol)],
                             dtype=np.int16).reshape(-1, NUM_ATOM_FEATURES)
    bonds = bonds_of(mol)
    bond_index = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds],
                          dtype=np.int32).reshape(-1, 2)
    bond_features = np.array([bond_feature_row(b) for b in bonds],
                             dtype=np.int16).reshape(-1, NUM_BOND_FEATURES)
    return atom_features, bond_index, bond_features
