"""3D coordinates: RDKit conformers (ETKDG, then MMFF) and alignment of given geometries."""
from __future__ import annotations

import time

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdDetermineBonds

from .features import graph_mol


class ConformerError(RuntimeError):
    """Embedding produced no conformer (or not within the time limit)."""


class GeometryMismatch(ValueError):
    """A given geometry does not describe the same atoms and bonds as the molecule graph."""


# Force-field iterations per conformer; RDKit's default (200) leaves many drug-like
# molecules unconverged.
MMFF_MAX_ITERS = 2000
# Embedding attempts with fresh seeds when ETKDG returns fewer conformers than asked.
EMBED_ROUNDS = 3


def _optimize(mol: Chem.Mol, max_iters: int) -> str:
    """Relax every conformer of `mol` in place; return the force field used."""
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=max_iters)
        return "mmff"
    if AllChem.UFFHasAllMoleculeParams(mol):
        AllChem.UFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=max_iters)
        return "uff"
    return "none"  # e.g. unusual metal centres: keep the distance-geometry coordinates


def generate_conformers(mol: Chem.Mol, num_conformers: int, seed: int, timeout_s: float = 10.0,
                        with_hydrogens: bool = False, optimize: bool = True) -> np.ndarray:
    """Return float32 [num_conformers, N, 3] coordinates of the atoms of
    `featurize_mol(mol, with_hydrogens)`, in that order, in Angstrom.

    Embedding uses ETKDGv3 on the molecule with explicit hydrogens, seeded with `seed`,
    then MMFF94 relaxation (UFF when MMFF has no parameters). When fewer distinct
    conformers than asked are obtained, the ones found are repeated in order.
    Raises ConformerError when no conformer is found within `timeout_s` seconds.
    """
    if num_conformers < 1:
        raise ValueError("num_conformers must be >= 1")
    start = time.monotonic()
    graph = graph_mol(mol, with_hydrogens)
    num_atoms = graph.GetNumAtoms()
    mol_h = Chem.AddHs(graph)  # new hydrogens go after the graph's atoms
    found: list[np.ndarray] = []
    for attempt in range(EMBED_ROUNDS):
        left = timeout_s - (time.monotonic() - start)
        if left <= 0 or len(found) >= num_conformers:
            break
        params = AllChem.ETKDGv3()
        params.randomSeed = int(seed + attempt * 7919) % (2**31 - 1)
        params.timeout = max(1, int(np.ceil(left)))
        params.useRandomCoords = attempt > 0  # the fallback RDKit recommends for hard cases
        params.numThreads = 1
        ids = list(AllChem.EmbedMultipleConfs(mol_h, num_conformers - len(found), params))
        if not ids:
            continue
        if optimize and time.monotonic() - start < timeout_s:
            _optimize(mol_h, MMFF_MAX_ITERS)
        # Iterate over the conformers the molecule holds: after a timeout, RDKit can
        # return ids of conformers it did not keep.
        for conformer in mol_h.GetConformers():
            positions = conformer.GetPositions()[:num_atoms]
            if np.isfinite(positions).all():
                found.append(positions.astype(np.float32))
    if not found:
        raise ConformerError(f"no conformer within {timeout_s:g} s after {EMBED_ROUNDS} embedding rounds")
    while len(found) < num_conformers:
        found.append(found[len(found) % len(found)].copy())
    return np.stack(found[:num_conformers])


def coordinates_2d(mol: Chem.Mol, num_conformers: int, with_hydrogens: bool = False) -> np.ndarray:
    """2D depiction coordinates (z = 0) repeated `num_conformers` times: the fallback
    for molecules that cannot be embedded in 3D."""
    graph = Chem.Mol(graph_mol(mol, with_hydrogens))
    AllChem.Compute2DCoords(graph)
    xyz = graph.GetConformer().GetPositions().astype(np.float32)
    xyz[:, 2] = 0.0
    return np.repeat(xyz[None], max(num_conformers, 1), axis=0)


def mol_from_xyz(elements: list[str], xyz: np.ndarray) -> Chem.Mol:
    """An RDKit molecule with the given atoms, positions and bonds guessed from distances."""
    lines = [str(len(elements)), ""]
    lines += [f"{e} {x:.10f} {y:.10f} {z:.10f}" for e, (x, y, z) in zip(elements, np.asarray(xyz, float))]
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        raise GeometryMismatch("unreadable geometry")
    rdDetermineBonds.DetermineConnectivity(mol)
    return mol


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


def align_geometry(mol: Chem.Mol, geometry: Chem.Mol, with_hydrogens: bool = False,
                   conf_id: int = -1) -> np.ndarray:
    """Coordinates float32 [N, 3] of `geometry` for the atoms of
    `featurize_mol(mol, with_hydrogens)`, in that order.

    `geometry` is a molecule with one conformer and bonds (from an SDF, or guessed from
    an XYZ block by `mol_from_xyz`); its atom order may differ from `mol`'s. The atoms
    are matched on element and connectivity (every bond of the graph must be a bond of
    the geometry); GeometryMismatch if they do not correspond.
    """
    graph = graph_mol(mol, with_hydrogens)
    if not with_hydrogens:
        params = Chem.RemoveHsParameters()
        params.removeDefiningBondStereo = True
        geometry = Chem.RemoveHs(geometry, params, sanitize=False)
    elif geometry.GetNumAtoms() != graph.GetNumAtoms():
        geometry = Chem.AddHs(geometry, addCoords=True)
    if geometry.GetNumAtoms() != graph.GetNumAtoms():
        raise GeometryMismatch(f"{graph.GetNumAtoms()} atoms in the graph, {geometry.GetNumAtoms()} in the geometry")
    positions = geometry.GetConformer(conf_id).GetPositions()
    elements_g = [a.GetAtomicNum() for a in geometry.GetAtoms()]
    elements_m = [a.GetAtomicNum() for a in graph.GetAtoms()]
    if sorted(elements_g) != sorted(elements_m):
        raise GeometryMismatch("the geometry has other elements than the molecule")
    geo_bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in geometry.GetBonds()}
    mol_bonds = {frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in graph.GetBonds()}
    # Bonds guessed from distances can include extra contacts (strained rings), so the
    # graph's bonds need only be among the geometry's.
    if elements_g == elements_m and mol_bonds <= geo_bonds:
        return positions.astype(np.float32)  # same order already
    geometry.UpdatePropertyCache(strict=False)
    match = geometry.GetSubstructMatch(_connectivity_query(graph), useChirality=False)
    if len(match) != graph.GetNumAtoms():
        raise GeometryMismatch("the bonds of the geometry do not match the molecule")
    return positions[list(match)].astype(np.float32)
