"""From a SMILES string or an RDKit molecule to a `MoleculeRecord`, with the rules that
decide which molecules are rejected. data_prep and prediction both go through
`make_record`, so that a molecule is accepted or rejected the same way everywhere.

Policy for inputs that need one:
- Salts and mixtures (several fragments) are kept whole: pairs of atoms in different
  fragments get the SPD's "unreachable" value. `largest_fragment=True` keeps only the
  fragment with the most atoms instead.
- Metal complexes are kept when RDKit parses them (OGB maps rare values to its "misc"
  entries). Their conformers often fail; that follows `on_conformer_failure`.
- Hydrogen atoms are graph nodes only with `with_hydrogens=True`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from .conformers import (ConformerError, GeometryMismatch, align_geometry, coordinates_2d,
                         generate_conformers)
from .features import featurize_mol, graph_mol
from .molecule import Geometry, MoleculeRecord

# Changes whenever the same input would give other features (recorded in manifests).
FEATURIZATION_VERSION = 1

# Machine-readable reasons for rejecting a molecule, with what they mean.
REJECT_REASONS = {
    "invalid_smiles": "RDKit cannot parse or sanitize the molecule",
    "wildcard_atom": "the molecule has a '*' (dummy, atomic number 0) atom",
    "single_atom": "fewer than two atoms in the graph (no atom pairs)",
    "too_many_atoms": "more atoms than the maximum",
    "conformer_failed": "no 3D conformer could be embedded in the time limit",
    "geometry_mismatch": "the source geometry does not match the molecule's atoms and bonds",
    "invalid_label": "a label is not a number",
    "duplicate_id": "an earlier row has the same id",
    "uncharacterized": "listed by the source as a molecule whose geometry failed a consistency check",
    "featurization_error": "an unexpected error while featurizing (the detail names it; please report it)",
}


class RejectedMolecule(ValueError):
    """A molecule that the rules reject; `reason` is a key of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REJECT_REASONS:
            raise KeyError(f"unknown reject reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class FeaturizeOptions:
    with_hydrogens: bool = False
    # Conformers generated for molecules without a source geometry; 0 = 2D-only record.
    num_conformers: int = 1
    conformer_timeout_s: float = 10.0
    # "reject" the molecule, or keep it with 2D depiction coordinates ("2d").
    on_conformer_failure: str = "reject"
    max_atoms: int = 0  # 0 = no limit
    largest_fragment: bool = False
    seed: int = 0


def sanitized(mol: Chem.Mol | None, unreadable: str) -> Chem.Mol:
    """Sanitize a molecule RDKit parsed with sanitize=False (None: it could not parse it);
    RejectedMolecule("invalid_smiles") with `unreadable` or RDKit's message."""
    if mol is None:
        raise RejectedMolecule("invalid_smiles", unreadable)
    try:
        Chem.SanitizeMol(mol)
    except Exception as error:  # RDKit raises several sanitization exception types
        raise RejectedMolecule("invalid_smiles", str(error).strip()) from None
    return mol


def mol_from_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitize; RejectedMolecule("invalid_smiles") with RDKit's message."""
    smiles = (smiles or "").strip()
    if not smiles:
        raise RejectedMolecule("invalid_smiles", "empty SMILES")
    mol = sanitized(Chem.MolFromSmiles(smiles, sanitize=False), "unparsable SMILES")
    # The same hydrogen handling as Chem.MolFromSmiles (and so OGB's smiles2graph).
    return Chem.RemoveHs(mol)


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms (the first one on a tie)."""
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(fragments, key=lambda f: f.GetNumAtoms()) if len(fragments) > 1 else mol


def make_record(molecule: str | Chem.Mol, options: FeaturizeOptions, id: str = "",
                targets=(), geometry: Chem.Mol | None = None, seed: int = 0) -> MoleculeRecord:
    """Featurize one molecule.

    molecule: a SMILES string or a sanitized RDKit molecule (e.g. from an SDF).
    geometry: a molecule with one 3D conformer giving the source geometry (its atom order
        may differ); when None, `options.num_conformers` RDKit conformers are generated.
    seed: added to `options.seed` for this molecule's conformers (data_prep passes the
        row number, so results do not depend on the order molecules are processed in).
    Raises RejectedMolecule.
    """
    if isinstance(molecule, str):
        smiles = molecule.strip()
        mol = mol_from_smiles(smiles)
    else:
        mol = molecule
        smiles = Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))
    if mol.GetNumAtoms() == 0:
        raise RejectedMolecule("invalid_smiles", "no atoms")
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        raise RejectedMolecule("wildcard_atom")
    if options.largest_fragment and len(Chem.GetMolFrags(mol)) > 1:
        mol = largest_fragment(mol)
        smiles = Chem.MolToSmiles(mol)

    graph = graph_mol(mol, options.with_hydrogens)
    num_atoms = graph.GetNumAtoms()
    if num_atoms < 2:
        raise RejectedMolecule("single_atom", f"{num_atoms} atom")
    if options.max_atoms and num_atoms > options.max_atoms:
        raise RejectedMolecule("too_many_atoms", f"{num_atoms} > {options.max_atoms}")
    atom_features, bond_index, bond_features = featurize_mol(graph)

    if geometry is not None:
        try:
            xyz = align_geometry(mol, geometry, options.with_hydrogens)
        except GeometryMismatch as error:
            raise RejectedMolecule("geometry_mismatch", str(error)) from None
        coordinates, code = xyz[None], Geometry.SOURCE
    elif options.num_conformers > 0:
        try:
            coordinates = generate_conformers(mol, options.num_conformers, options.seed + seed,
                                              options.conformer_timeout_s, options.with_hydrogens)
            code = Geometry.RDKIT_3D
        except ConformerError as error:
            if options.on_conformer_failure != "2d":
                raise RejectedMolecule("conformer_failed", str(error)) from None
            coordinates = coordinates_2d(mol, options.num_conformers, options.with_hydrogens)
            code = Geometry.FALLBACK_2D
    else:
        coordinates, code = np.zeros((0, num_atoms, 3), np.float32), Geometry.NONE

    record = MoleculeRecord(
        id=str(id), smiles=smiles, atom_features=atom_features, bond_index=bond_index,
        bond_features=bond_features, coordinates=np.ascontiguousarray(coordinates, np.float32),
        targets=np.asarray(targets, dtype=np.float32).reshape(-1), geometry=code)
    record.validate()
    return record
