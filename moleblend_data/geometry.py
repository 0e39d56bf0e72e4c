"""Source geometries: a molecule's 3D coordinates as given by the input file.

A source that gives the molecule as SMILES and its geometry separately (QM9's XYZ block,
PCQM4Mv2's SDF) is joined by `with_source_geometry`: the SMILES' atoms, bonds and charges
in the geometry's atom order, with the geometry's conformer, and stereo perceived from the
3D coordinates as RDKit's SDF reader does. A source that gives both in one molfile is read
by RDKit's standard molfile parser (`featurize.mol_from_molblock`), which does the same.
"""
from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds

# Coordinates with every |z| below this are a flat depiction, not a 3D geometry.
FLAT_Z_TOLERANCE = 1e-4


class GeometryMismatch(ValueError):
    """A given geometry does not describe the same atoms and bonds as the molecule."""


def has_3d_geometry(mol: Chem.Mol) -> bool:
    """True when `mol` holds a conformer that is 3D: flagged so, and not flat in z (a
    molfile can declare 3D while holding depiction coordinates with z = 0)."""
    if mol.GetNumConformers() == 0:
        return False
    conformer = mol.GetConformer()
    if not conformer.Is3D():
        return False
    return bool(np.abs(conformer.GetPositions()[:, 2]).max(initial=0.0) > FLAT_Z_TOLERANCE)


def mol_from_xyz(elements: list[str], xyz: np.ndarray) -> Chem.Mol:
    """An RDKit molecule with the given atoms and positions, in that order, and bonds
    guessed from the distances (connectivity only: bond orders come from the SMILES)."""
    lines = [str(len(elements)), ""]
    lines += [f"{e} {x:.10f} {y:.10f} {z:.10f}" for e, (x, y, z) in zip(elements, np.asarray(xyz, float))]
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        raise GeometryMismatch("unreadable geometry")
    if len(elements) > 1:
        rdDetermineBonds.DetermineConnectivity(mol)
    return mol


def same_molecule(mol: Chem.Mol, other: Chem.Mol) -> None:
    """GeometryMismatch unless both are the same molecule up to stereo and hydrogens'
    explicitness (e.g. a molfile and the SMILES a source gives for it)."""
    first = Chem.MolToSmiles(Chem.RemoveAllHs(mol, sanitize=False), isomericSmiles=False)
    second = Chem.MolToSmiles(Chem.RemoveAllHs(other, sanitize=False), isomericSmiles=False)
    if first != second:
        raise GeometryMismatch(f"the molfile is {first}, the SMILES {second}")


def _connectivity_query(mol: Chem.Mol) -> Chem.Mol:
    """`mol` as a substructure query on elements and connectivity only (no bond orders,
    charges or hydrogen counts, which a geometry does not state)."""
    query = Chem.RWMol()
    for atom in mol.GetAtoms():
        query.AddAtom(Chem.AtomFromSmarts(f"[#{atom.GetAtomicNum()}]"))
    for bond in mol.GetBonds():
        query.AddBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), Chem.BondType.SINGLE)
        query.ReplaceBond(query.GetNumBonds() - 1, Chem.BondFromSmarts("~"))
    return query.GetMol()


def _geometry_order(template: Chem.Mol, geometry: Chem.Mol) -> list[int]:
    """order[k] = the template atom at position k of the geometry. Atoms correspond on
    element and connectivity; every bond of the template must be a bond of the geometry
    (bonds guessed from distances can add contacts in strained rings)."""
    elements_t = [a.GetAtomicNum() for a in template.GetAtoms()]
    elements_g = [a.GetAtomicNum() for a in geometry.GetAtoms()]
    if sorted(elements_t) != sorted(elements_g):
        raise GeometryMismatch("the geometry has other elements than the molecule")
    template_bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in template.GetBonds()}
    geometry_bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in geometry.GetBonds()}
    if elements_t == elements_g and template_bonds <= geometry_bonds:
        return list(range(template.GetNumAtoms()))  # same order already
    geometry.UpdatePropertyCache(strict=False)
    match = geometry.GetSubstructMatch(_connectivity_query(template), useChirality=False)
    if len(match) != template.GetNumAtoms():
        raise GeometryMismatch("the bonds of the geometry do not match the molecule")
    order = [0] * len(match)
    for template_atom, geometry_atom in enumerate(match):
        order[geometry_atom] = template_atom
    return order


def _with_bonds_in_atom_order(mol: Chem.Mol) -> Chem.Mol:
    """A copy of `mol` whose bonds are listed by their atoms' indices: the bond list a
    source without one (an XYZ block) gets, independent of the SMILES' atom order."""
    rebuilt = Chem.RWMol()
    for atom in mol.GetAtoms():
        rebuilt.AddAtom(atom)
    pairs = sorted(tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds())
    for i, j in pairs:
        bond = mol.GetBondBetweenAtoms(i, j)
        rebuilt.AddBond(i, j, bond.GetBondType())
        rebuilt.GetBondBetweenAtoms(i, j).SetIsAromatic(bond.GetIsAromatic())
    rebuilt = rebuilt.GetMol()
    Chem.SanitizeMol(rebuilt)
    return rebuilt


def with_source_geometry(mol: Chem.Mol, geometry: Chem.Mol) -> Chem.Mol:
    """`mol` (sanitized, e.g. from SMILES) in the atom order of `geometry`, with the
    geometry's conformer, and stereo perceived from the 3D coordinates as RDKit's SDF reader
    does (replacing any the SMILES stated). Bonds are listed in atom order, since RDKit's
    chirality tags refer to the order of an atom's bonds.

    geometry: a molecule with one 3D conformer and bonds (from an SDF, or guessed by
    `mol_from_xyz`), with all hydrogens or with none. Without hydrogens, the result has
    none either (the geometry cannot say where they are, nor the E/Z of a bond that only
    a hydrogen would define); `graph_mol` places them when they are graph nodes.
    GeometryMismatch if the atoms do not correspond.
    """
    geometry_has_h = any(a.GetAtomicNum() == 1 for a in geometry.GetAtoms())
    template = Chem.AddHs(mol) if geometry_has_h else Chem.RemoveAllHs(mol)
    if geometry.GetNumAtoms() != template.GetNumAtoms():
        raise GeometryMismatch(f"{template.GetNumAtoms()} atoms in the molecule, "
                               f"{geometry.GetNumAtoms()} in the geometry")
    ordered = _with_bonds_in_atom_order(Chem.RenumberAtoms(template, _geometry_order(template, geometry)))
    positions = geometry.GetConformer().GetPositions()
    conformer = Chem.Conformer(ordered.GetNumAtoms())
    conformer.Set3D(True)
    for i, position in enumerate(positions):
        conformer.SetAtomPosition(i, position.tolist())
    ordered.AddConformer(conformer, assignId=True)
    Chem.AssignStereochemistryFrom3D(ordered, replaceExistingTags=True)
    return ordered
