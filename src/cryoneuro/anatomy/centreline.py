"""The nerve centreline and its end-organ direction, extracted from a nerve segment.

Why: the planner measures the block along the nerve and the regrowth distance to the end organ
on a centreline; typing one by hand for each patient is slow and error-prone, and a segment of
the nerve (and neuroma) already contains it.

Method:

1. **Skeleton** — ``skimage.morphology.skeletonize`` of the nerve mask (3D thinning, Lee et al.
   1994, CVGIP 56:462), in voxel space.
2. **Graph** — skeleton voxels are nodes; 26-neighbours are joined by edges weighted by their
   *physical* distance (spacing and direction applied), as a ``scipy.sparse`` matrix; only the
   largest connected component is kept (the others are listed by size).
3. **Longest path** — the graph's diameter by a double sweep of Dijkstra
   (``scipy.sparse.csgraph.dijkstra``): the farthest node from any start, then the farthest from
   that one. On a tree — what a thinned tubular nerve is, away from small loops the thinning may
   leave — the double sweep gives the exact longest shortest path (Handler 1973, Transp Sci 7:287).
4. **Smoothing and resampling** — the voxel staircase is smoothed with a centred moving average
   over ``smooth_mm`` of arc length (end points kept) and resampled every ``step_mm``.
5. **Direction** — the centreline runs proximal → distal, the end organ at its distal end (the
   convention of :class:`~cryoneuro.anatomy.phantoms.Phantom`). The distal end is the one nearer
   ``end_organ_hint_mm`` when given, else the one nearer the target (neuroma) centroid: a stump
   neuroma ends the nerve, and a Morton's neuroma lies in the distal interspace, just proximal
   to the web space where the nerve divides. The rule used is recorded in the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from cryoneuro.errors import InputError


class CentrelineError(InputError):
    """No usable centreline in the nerve segment (empty, or too short to carry a block)."""


@dataclass
class Centreline:
    """A nerve centreline in LPS mm, proximal → distal, with the end organ at its distal end."""

    points_mm: np.ndarray  # (n, 3)
    end_organ_mm: np.ndarray  # (3,)
    length_mm: float  # arc length of the smoothed line
    rule: str  # how the distal end was chosen
    dropped_components: list[int]  # voxel counts of skeleton pieces not on the main component

    def summary(self) -> dict:
        return {
            "centreline_mm": np.round(self.points_mm, 2).tolist(),
            "end_organ_mm": np.round(self.end_organ_mm, 2).tolist(),
            "length_mm": round(self.length_mm, 2),
            "distal_end_rule": self.rule,
            "method": "skeletonize (scikit-image) → longest path (Dijkstra double sweep) → "
            "moving-average smoothing",
            "dropped_skeleton_pieces_voxels": self.dropped_components,
        }


def _graph(idx: np.ndarray, affine3: np.ndarray) -> sparse.csr_matrix:
    """26-neighbour graph of the skeleton voxels ``idx`` (n, 3), weights in mm."""
    lookup = {tuple(v): i for i, v in enumerate(idx.tolist())}
    rows, cols, weights = [], [], []
    offsets = [
        np.array(o)
        for o in np.ndindex(3, 3, 3)
        if o != (1, 1, 1)  # itself
    ]
    for i, v in enumerate(idx):
        for o in offsets:
            j = lookup.get(tuple(v + o - 1))
            if j is not None and j > i:
                d = float(np.linalg.norm(affine3 @ (o - 1)))
                rows.append(i)
                cols.append(j)
                weights.append(d)
    n = len(idx)
    g = sparse.coo_matrix((weights, (rows, cols)), shape=(n, n))
    return (g + g.T).tocsr()


def _smooth(points: np.ndarray, smooth_mm: float, step_mm: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1])
    if total <= 0:
        return points[:1]
    n = max(2, int(np.ceil(total / step_mm)) + 1)
    grid = np.linspace(0.0, total, n)
    resampled = np.column_stack([np.interp(grid, s, points[:, a]) for a in range(3)])
    half = max(1, round(0.5 * smooth_mm / (total / (n - 1))))
    out = resampled.copy()
    for i in range(1, n - 1):
        w = min(half, i, n - 1 - i)  # shrink the window at the ends so they stay put
        out[i] = resampled[i - w : i + w + 1].mean(axis=0)
    return out


def extract_centreline(
    nerve_mask: np.ndarray,
    affine: np.ndarray,
    *,
    target_mask: np.ndarray | None = None,
    end_organ_hint_mm: np.ndarray | None = None,
    smooth_mm: float = 3.0,
    step_mm: float = 1.0,
    min_length_mm: float = 5.0,
    source: str = "nerve segment",
) -> Centreline:
    """Centreline (LPS mm) of ``nerve_mask`` (its union with ``target_mask`` when given).

    Parameters
    ----------
    nerve_mask, target_mask : bool arrays on one grid
    affine : 4×4 voxel index → LPS mm
    end_organ_hint_mm : a point (LPS mm) near the end organ; the nearer end is distal
    smooth_mm, step_mm : smoothing window and output spacing along the arc (mm)
    min_length_mm : shorter centrelines are refused (a block needs a length of nerve)
    """
    from skimage.morphology import skeletonize

    mask = np.asarray(nerve_mask, bool)
    if target_mask is not None:
        mask = mask | np.asarray(target_mask, bool)
    if not mask.any():
        raise CentrelineError(f"{source}: the nerve segment is empty")
    affine = np.asarray(affine, float)
    a3, t = affine[:3, :3], affine[:3, 3]
    skel = skeletonize(mask) > 0
    if not skel.any():  # a very thin mask can thin to nothing; fall back to its voxels
        skel = mask
    labels, _ = ndimage.label(skel, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    main = int(np.argmax(sizes)) + 1
    dropped = sorted((int(s) for i, s in enumerate(sizes, 1) if i != main), reverse=True)
    idx = np.argwhere(labels == main)
    if len(idx) < 2:
        raise CentrelineError(f"{source}: the skeleton has a single voxel; is the nerve segmented?")
    g = _graph(idx, a3)
    d0 = csgraph.dijkstra(g, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    da, pred = csgraph.dijkstra(g, indices=a, return_predecessors=True)
    b = int(np.argmax(np.where(np.isfinite(da), da, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    points = (a3 @ idx[path].T).T + t  # b → a
    length = float(da[b])  # along the voxel staircase: an upper bound of the arc length
    if length < min_length_mm:
        raise CentrelineError(
            f"{source}: the nerve's centreline is {length:.1f} mm long; at least "
            f"{min_length_mm:g} mm of nerve must be segmented to place a block"
        )
    if end_organ_hint_mm is not None:
        ref = np.asarray(end_organ_hint_mm, float)
        rule = f"end nearer the end-organ hint {np.round(ref, 1).tolist()} mm"
    elif target_mask is not None and np.any(target_mask):
        ref = (a3 @ np.argwhere(target_mask).mean(axis=0)) + t
        rule = "end nearer the target (neuroma) centroid"
    else:
        raise CentrelineError(
            f"{source}: cannot tell the distal end without a target segment; "
            "give nerve.end_organ_hint_mm in the case file"
        )
    if np.linalg.norm(points[0] - ref) < np.linalg.norm(points[-1] - ref):
        points = points[::-1]  # make it proximal → distal
    line = _smooth(points, smooth_mm, step_mm)
    smooth_length = float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
    return Centreline(line, line[-1].copy(), smooth_length, rule, dropped)
