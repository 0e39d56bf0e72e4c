"""From a SMILES string, a molfile or an RDKit molecule to a `MoleculeRecord`, with the
rules that decide which molecules are rejected. data_prep and prediction both go through
`make_record`, so that a molecule is accepted or rejected the same way everywhere.

One path for every source:
- SMILES: RDKit's standard parse (`Chem.MolFromSmiles`); the SMILES' own stereo stands and
  generated conformers follow it.
- Molfile (SDF records, QM9's gdb9.sdf): RDKit's standard parse (`mol_from_molblock`, as
  `Chem.SDMolSupplier`); with 3D coordinates, stereo is perceived from them and they are
  the source geometry.
- SMILES plus a separate geometry (QM9's XYZ, PCQM4Mv2's SDF): `geometry.with_source_geometry`;
  the geometry gives atom order, coordinates and stereo.
The graph is `features.graph_mol` of that molecule (heavy atoms, or every atom with
`with_hydrogens`), and coordinates are taken from the same molecule, so the graph and the
geometry always hold the same atoms in the same order.

Policy for inputs that need one:
- Salts and mixtures (several fragments) are kept whole: pairs of atoms in different
  fragments get the SPD's "unreachable" value. `largest_fragment=True` keeps only the
  fragment with the most atoms instead.
- Metal complexes are kept when RDKit parses them (OGB maps rare values to its "misc"
  entries). Their conformers often fail; that follows `on_conformer_failure`.
- Single atoms (methane's carbon, a lone ion) are kept: a property of methane is a fair
  request. Pretraining, which learns from atom pairs, leaves them out (and counts them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from .conformers import ConformerError, coordinates_2d, generate_conformers
from .features import featurize_mol, graph_mol, has_wildcard_atom
from .geometry import GeometryMismatch, has_3d_geometry, with_source_geometry
from .molecule import Geometry, MoleculeRecord

# Changes whenever the same input would give other features (recorded in manifests).
# 2: stereo from source geometries as RDKit's SDF reader perceives it, hydrogens that
#    define double-bond stereo kept with their coordinates, single atoms kept.
FEATURIZATION_VERSION = 2

def check_featurization_version(manifest: dict, where: str) -> None:
    """ValueError unless a prepared dataset's records are of this featurization version."""
    version = manifest.get("featurization_version")
    if version != FEATURIZATION_VERSION:
        raise ValueError(f"{where} holds records of featurization version {version}, this plugin reads version "
                         f"{FEATURIZATION_VERSION}: rebuild it with the same `python -m data_prep` command "
                         "(see docs/data.md)")


# Machine-readable reasons for rejecting a molecule, with what they mean.
REJECT_REASONS = {
    "invalid_smiles": "RDKit cannot parse or sanitize the molecule",
    "wildcard_atom": "the molecule has a '*' (dummy, atomic number 0) atom",
    "too_many_atoms": "more atoms than the maximum",
    "conformer_failed": "no 3D conformer could be embedded in the time limit",
    "geometry_mismatch": "the source geometry does not match the molecule's atoms and bonds",
    "invalid_label": "a label is not a finite number (or too large for float32)",
    "malformed_row": "a CSV row with another number of cells than the header, or a blank line",
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
    """Parse and sanitize as `Chem.MolFromSmiles` does; RejectedMolecule("invalid_smiles")
    with RDKit's message. The text must be one SMILES: RDKit reads what follows a space
    as a name, so a cell like "CC O" would otherwise be featurized as ethane."""
    smiles = (smiles or "").strip()
    if not smiles:
        raise RejectedMolecule("invalid_smiles", "empty SMILES")
    if any(c.isspace() for c in smiles):
        raise RejectedMolecule("invalid_smiles", f"whitespace inside the SMILES {smiles!r}")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:  # parse again, unsanitized, for RDKit's reason
        sanitized(Chem.MolFromSmiles(smiles, sanitize=False), "unparsable SMILES")
        raise RejectedMolecule("invalid_smiles", "unparsable SMILES")
    return mol


def mol_from_molblock(block: str, remove_hs: bool = False) -> Chem.Mol:
    """A molfile record read as `Chem.SDMolSupplier(path, removeHs=remove_hs)` reads it
    (sanitized; stereo from 3D coordinates when there are some, else from wedges);
    RejectedMolecule("invalid_smiles") with RDKit's message. Heavy-atom graphs read with
    remove_hs=True: removing hydrogens after reading is not always the same (RDKit
    versions differ on a double bond the file marks as either E or Z)."""
    mol = Chem.MolFromMolBlock(block, sanitize=True, removeHs=remove_hs)
    if mol is None:
        sanitized(Chem.MolFromMolBlock(block, sanitize=False, removeHs=False), "unreadable molfile record")
        raise RejectedMolecule("invalid_smiles", "unreadable molfile record")
    return mol


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most atoms (the first one on a tie)."""
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return max(fragments, key=lambda f: f.GetNumAtoms()) if len(fragments) > 1 else mol


def make_record(molecule: str | Chem.Mol, options: FeaturizeOptions, id: str = "",
                targets=(), geometry: Chem.Mol | None = None, seed: int = 0) -> MoleculeRecord:
    """Featurize one molecule.

    molecule: a SMILES string or a sanitized RDKit molecule (e.g. from `mol_from_molblock`).
    geometry: the source geometry, or None. Either `molecule` itself (a molfile with 3D
        coordinates: its conformer, atom order and stereo are used as read) or a separate
        molecule with one 3D conformer, in any atom order, with or without hydrogens (see
        `with_source_geometry`). When None, `options.num_conformers` RDKit conformers
        are generated (none for a 2D-only record).
    seed: added to `options.seed` for this molecule's conformers (data_prep passes the
        row number, so results do not depend on the order molecules are processed in).
    Raises RejectedMolecule.
    """
    if isinstance(molecule, str):
        mol = mol_from_smiles(molecule)
    else:
        # A molecule handed in by a user may be unsanitized (sanitize=False); sanitizing
        # a sanitized molecule changes nothing.
        mol = sanitized(Chem.Mol(molecule), "not an RDKit molecule")
        if geometry is molecule:
            geometry = mol
    if mol.GetNumAtoms() == 0:
        raise RejectedMolecule("invalid_smiles", "no atoms")
    if has_wildcard_atom(mol):
        raise RejectedMolecule("wildcard_atom")
    if geometry is not None and geometry is not mol:
        try:
            mol = with_source_geometry(mol, geometry)
        except GeometryMismatch as error:
            raise RejectedMolecule("geometry_mismatch", str(error)) from None
    fragment = options.largest_fragment and len(Chem.GetMolFrags(mol)) > 1
    if fragment:
        mol = largest_fragment(mol)
    # The SMILES as given when it is what was featurized; else the molecule's own (with
    # the stereo a geometry gave it).
    if isinstance(molecule, str) and geometry is None and not fragment:
        smiles = molecule.strip()
    else:
        smiles = Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))

    graph = graph_mol(mol, options.with_hydrogens)
    num_atoms = graph.GetNumAtoms()
    if options.max_atoms and num_atoms > options.max_atoms:
        raise RejectedMolecule("too_many_atoms", f"{num_atoms} > {options.max_atoms}")
    atom_features, bond_index, bond_features = featurize_mol(graph)

    if geometry is not None:
        coordinates, code = graph.GetConformer().GetPositions()[None], Geometry.SOURCE
    elif options.num_conformers > 0:
        try:
            coordinates = generate_conformers(graph, options.num_conformers, options.seed + seed,
                                              options.conformer_timeout_s)
            code = Geometry.RDKIT_3D
        except ConformerError as error:
            if options.on_conformer_failure != "2d":
                raise RejectedMolecule("conformer_failed", str(error)) from None
            coordinates = coordinates_2d(graph, options.num_conformers)
            code = Geometry.FALLBACK_2D
    else:
        coordinates, code = np.zeros((0, num_atoms, 3), np.float32), Geometry.NONE

    record = MoleculeRecord(
        id=str(id), smiles=smiles, atom_features=atom_features, bond_index=bond_index,
        bond_features=bond_features, coordinates=np.ascontiguousarray(coordinates, np.float32),
        targets=np.asarray(targets, dtype=np.float32).reshape(-1), geometry=code)
    record.validate()
    return record


def source_geometry_of(mol: Chem.Mol) -> Chem.Mol | None:
    """`mol` itself when it holds a 3D conformer to use as the source geometry, else None."""
    return mol if has_3d_geometry(mol) else None
