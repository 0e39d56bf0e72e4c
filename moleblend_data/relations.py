"""2D relations of every atom pair: shortest-path distance and the bonds along one path.

The path is the one Graphormer's Floyd-Warshall picks (intermediate atom k in the outer
loop, an update only on a strictly shorter distance), so a model loaded from a
Graphormer checkpoint sees the same multi-hop edge input. Paths through atom 0 are
kept as they are: Transformer-M's variant used 0 as "no intermediate atom" and so
collapsed such paths into one hop; here "no intermediate" is -1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .molecule import NUM_BOND_FEATURES

# SPD of a pair with no path between them (salts, mixtures). Graphormer uses the same
# value, so its spatial index (SPD + 1) is 511 for such pairs.
UNREACHABLE_SPD = 510
# Number of hops along the path whose bond features are kept (Graphormer's default).
MULTI_HOP_MAX_DIST = 5
# Value of edge_path entries beyond the end of a path.
NO_HOP = -1


@dataclass
class PairRelations:
    """spd: int16 [N, N], 0 on the diagonal, UNREACHABLE_SPD for disconnected pairs.
    edge_path: int16 [N, N, max_hops, 3], bond features of hop h of the path i -> j,
    NO_HOP past the path's end."""

    spd: np.ndarray
    edge_path: np.ndarray


# Entries of the distance matrices kept per block of Floyd-Warshall steps (4 to 8 MB).
HISTORY_ENTRIES = 1 << 21
_INT16_MAX = int(np.iinfo(np.int16).max)


def floyd_warshall(num_atoms: int, bond_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dist, via) [N, N]: Floyd-Warshall with intermediate atom k in the outer loop and
    an update only on a strictly shorter distance. dist is N + 1 for unreachable pairs;
    via[i, j] is the intermediate atom of the pair's last update (-1: none), so that the
    path i -> j is path(i, via) + path(via, j).
    """
    n = int(num_atoms)
    bond_index = np.asarray(bond_index, dtype=np.int64).reshape(-1, 2)
    far = n + 1  # longer than any real path; marks "no path yet"
    # Sums of two distances must fit the type.
    dtype = np.int16 if 2 * far <= _INT16_MAX else np.int32
    dist = np.full((n, n), far, dtype=dtype)
    dist.reshape(-1)[::n + 1] = 0  # the diagonal
    dist[bond_index[:, 0], bond_index[:, 1]] = 1
    dist[bond_index[:, 1], bond_index[:, 0]] = 1
    via = np.full((n, n), -1, dtype=np.int64)  # until a step updates the pair
    # An atom with fewer than two bonds lies inside no shortest path: its step would
    # change nothing.
    intermediates = np.flatnonzero(np.bincount(bond_index.reshape(-1), minlength=n) >= 2)
    block = max(1, HISTORY_ENTRIES // max(n * n, 1))
    for start in range(0, len(intermediates), block):
        steps = intermediates[start:start + block]
        # history[t]: the distances after the block's first t steps. Distances only
        # shrink, so a pair's last update is the number of steps before its final one.
        history = np.empty((len(steps) + 1, n, n), dtype=dtype)
        history[0] = dist
        for t, k in enumerate(steps.tolist()):
            # Distances are symmetric, so row k is also column k; neither changes in step k.
            through_k = history[t, k]
            np.minimum(history[t], through_k[:, None] + through_k, out=history[t + 1])
        dist = history[-1]
        last_update = (history != dist).sum(axis=0)
        block_via = np.concatenate(([-1], steps))[last_update]
        via = block_via if start == 0 else np.where(last_update > 0, block_via, via)
    return dist, via


def pair_relations(num_atoms: int, bond_index: np.ndarray, bond_features: np.ndarray,
                   max_hops: int = MULTI_HOP_MAX_DIST) -> PairRelations:
    n = int(num_atoms)
    bond_index = np.asarray(bond_index, dtype=np.int64).reshape(-1, 2)
    bond_features = np.asarray(bond_features).reshape(-1, NUM_BOND_FEATURES)
    num_bonds = len(bond_index)
    dist, via = floyd_warshall(n, bond_index)
    atoms = np.arange(n)
    rows = atoms[:, None]

    # next_atom[i, j]: the atom after i on the path i -> j. The path is path(i, via) +
    # path(via, j), so its next atom is that of the shorter path i -> via; following
    # j -> via(i, j) -> via(i, via(i, j)) ... ends at a pair without intermediate atom,
    # whose next atom is j itself (a bonded pair's other atom; i on the diagonal). Each
    # squaring of that map doubles the steps followed, and a chain is shorter than the
    # longest distance (N + 1 between fragments, where the "next atom" j is no bond away
    # and the path's hops are all NO_HOP).
    next_atom = np.where(via >= 0, via, atoms)
    longest = int(dist.max()) if n else 0
    followed = 1
    while followed < longest - 1:
        next_atom = next_atom[rows, next_atom]
        followed *= 2

    # The path i -> j continues as the path from its next atom to j. pairs[p, h] is the
    # pair, by flat index i * n + j, that the path of pair p has reached after h hops; a
    # pair's hop is the bond between i and next_atom[i, j], or the extra bond row
    # num_bonds (NO_HOP) where there is none (past the path's end, between fragments).
    bond_of_pair = np.full((n, n), num_bonds, dtype=np.int64)
    bond_ids = np.arange(num_bonds)
    bond_of_pair[bond_index[:, 0], bond_index[:, 1]] = bond_ids
    bond_of_pair[bond_index[:, 1], bond_index[:, 0]] = bond_ids
    first_bond = bond_of_pair[rows, next_atom].ravel()
    then = (next_atom * n + atoms).ravel()
    pairs = np.empty((n * n, max_hops), dtype=np.int64)
    if max_hops:
        pairs[:, 0] = np.arange(n * n)
    for hop in range(1, max_hops):
        pairs[:, hop] = then.take(pairs[:, hop - 1])
    hop_features = np.full((num_bonds + 1, NUM_BOND_FEATURES), NO_HOP, dtype=np.int16)
    hop_features[:num_bonds] = bond_features
    edge_path = hop_features.take(first_bond.take(pairs), axis=0).reshape(n, n, max_hops, NUM_BOND_FEATURES)

    spd = np.where(dist <= n, dist, UNREACHABLE_SPD).astype(np.int16)
    return PairRelations(spd=spd, edge_path=edge_path)
