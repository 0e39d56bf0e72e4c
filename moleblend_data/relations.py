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


def pair_relations(num_atoms: int, bond_index: np.ndarray, bond_features: np.ndarray,
                   max_hops: int = MULTI_HOP_MAX_DIST) -> PairRelations:
    n = int(num_atoms)
    bond_index = np.asarray(bond_index, dtype=np.int64).reshape(-1, 2)
    bond_features = np.asarray(bond_features).reshape(-1, NUM_BOND_FEATURES)
    far = np.int64(n + 1)  # longer than any real path; marks "no path yet"

    dist = np.full((n, n), far, dtype=np.int64)
    np.fill_diagonal(dist, 0)
    a, b = bond_index[:, 0], bond_index[:, 1]
    dist[a, b] = 1
    dist[b, a] = 1
    via = np.full((n, n), -1, dtype=np.int64)
    candidate = np.empty_like(dist)
    shorter = np.empty((n, n), dtype=bool)
    for k in range(n):
        # Row k and column k cannot change while k is the intermediate (dist[k, k] = 0),
        # so updating all pairs at once equals the sequential triple loop. In place: the
        # arrays are small, and allocating them cost more than the arithmetic.
        np.add(dist[:, k, None], dist[None, k, :], out=candidate)
        np.less(candidate, dist, out=shorter)
        np.copyto(dist, candidate, where=shorter)
        np.copyto(via, k, where=shorter)
    reachable = dist < far

    # next_atom[i, j]: the atom after i on the path i -> j. The path i -> j is
    # path(i, via) + path(via, j), so its first step is that of the shorter path i -> via.
    next_atom = np.full((n, n), -1, dtype=np.int64)
    direct = (dist == 1)
    next_atom[direct] = np.broadcast_to(np.arange(n)[None, :], (n, n))[direct]
    max_dist = int(dist[reachable].max()) if n else 0
    for d in range(2, max_dist + 1):
        i, j = np.nonzero(dist == d)
        next_atom[i, j] = next_atom[i, via[i, j]]

    bond_of_pair = np.full((n, n, NUM_BOND_FEATURES), NO_HOP, dtype=np.int16)
    bond_of_pair[a, b] = bond_features
    bond_of_pair[b, a] = bond_features
    edge_path = np.full((n, n, max_hops, NUM_BOND_FEATURES), NO_HOP, dtype=np.int16)
    current = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
    target = np.broadcast_to(np.arange(n)[None, :], (n, n))
    for hop in range(max_hops):
        on_path = reachable & (dist > hop)
        if not on_path.any():
            break
        step = np.where(on_path, next_atom[current, target], current)
        edge_path[:, :, hop][on_path] = bond_of_pair[current, step][on_path]
        current = step

    spd = np.where(reachable, dist, UNREACHABLE_SPD).astype(np.int16)
    return PairRelations(spd=spd, edge_path=edge_path)
