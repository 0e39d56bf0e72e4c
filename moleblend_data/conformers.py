"""Generated 3D coordinates: RDKit conformers (ETKDG, then MMFF), and 2D depictions."""
from __future__ import annotations

import time

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem


class ConformerError(RuntimeError):
    """Embedding produced no conformer (or not within the time limit)."""


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


def generate_conformers(graph: Chem.Mol, num_conformers: int, seed: int, timeout_s: float = 10.0,
                        optimize: bool = True) -> np.ndarray:
    """Return float32 [num_conformers, N, 3] coordinates of the atoms of `graph` (the
    molecule whose atoms are the graph's nodes), in that order, in Angstrom.

    Embedding uses ETKDGv3 on the molecule with explicit hydrogens, seeded with `seed`,
    following the stereo the molecule states (unstated stereocentres come out at random),
    then MMFF94 relaxation (UFF when MMFF has no parameters). When fewer distinct
    conformers than asked are obtained, the ones found are repeated in order.
    Raises ConformerError when no conformer is found within `timeout_s` seconds.
    """
    if num_conformers < 1:
        raise ValueError("num_conformers must be >= 1")
    start = time.monotonic()
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


def coordinates_2d(graph: Chem.Mol, num_conformers: int) -> np.ndarray:
    """2D depiction coordinates (z = 0) of `graph`'s atoms repeated `num_conformers` times:
    the fallback for molecules that cannot be embedded in 3D."""
    graph = Chem.Mol(graph)
    AllChem.Compute2DCoords(graph)
    xyz = graph.GetConformer().GetPositions().astype(np.float32)
    xyz[:, 2] = 0.0
    return np.repeat(xyz[None], max(num_conformers, 1), axis=0)
