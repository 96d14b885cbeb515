"""Perceptual-hash de-duplication (CE-Dedup, Li et al. 2021), with an explicit grouping rule.

* :func:`perceptual_hashes` computes aHash / dHash / pHash / wHash with ``imagehash`` and packs
  each into an unsigned integer (``hash_size**2`` bits, most significant bit first, the same bit
  order as ``str(imagehash.ImageHash)``).
* :func:`hamming_pairs` finds every pair within Hamming distance ``t`` with multi-index hashing:
  the ``n_bits`` bits are split into ``t + 1`` contiguous chunks; by the pigeonhole principle two
  hashes within distance ``t`` agree exactly on at least one chunk, so only pairs that share a
  chunk value (a bucket) are candidates, and each candidate is verified by popcount. Exact (no
  missed pairs), but a bucket of ``s`` hashes costs ``s^2/2`` checks; low-entropy chunks (large
  ``t``, or images that hash alike) degrade it towards all pairs.
* :func:`dedup_groups` links every such pair and takes connected components (so the groups do not
  depend on the input order; note that chains can join hashes farther apart than ``t``). Each
  group keeps its medoid, the member with the least sum of Hamming distances to the other
  members (ties to the lowest index). A group whose members carry different labels is a label
  conflict: it is reported in ``conflicts`` and keeps one medoid *per label* (the medoid among
  that label's members) instead of silently merging classes.
* Mirrored copies (ours): perceptual hashes are not flip-invariant. With ``mirror_hashes`` (the
  hashes of the horizontally mirrored images), two images also match when one's hash is within
  ``t`` of the other's mirror hash: each image is two nodes (its hash and its mirror hash) joined
  by an edge, and the groups are the connected components; the distance used for the medoid is
  ``min(d(h_a, h_b), d(h_a, m_b))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dcqformat.errors import InputImageError, InvalidArgumentError
from dcqformat.select._validate import check_int, check_labels, to_numpy
from dcqformat.select.result import Selection, interleave

__all__ = [
    "HASH_METHODS",
    "DedupResult",
    "dedup_groups",
    "hamming_pairs",
    "perceptual_hashes",
    "popcount64",
]

HASH_METHODS = ("phash", "ahash", "dhash", "whash")
_SMALL_BUCKET = 32
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (``np.bitwise_count`` when numpy has it)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = x.reshape(*x.shape, 1).view(np.uint8)
    return _POP8[as_bytes].sum(axis=-1, dtype=np.int64)


def perceptual_hashes(
    images: Iterable[Any], method: str = "phash", hash_size: int = 8
) -> np.ndarray:
    """Perceptual hashes of PIL images as a uint64 array.

    ``method``: ``"phash"`` (DCT), ``"ahash"`` (mean), ``"dhash"`` (gradient) or ``"whash"``
    (Haar wavelet); ``hash_size`` 2..8 gives ``hash_size**2 <= 64`` bits (``whash`` needs a
    power of two). Images are converted to greyscale by imagehash itself.
    """
    if method not in HASH_METHODS:
        raise InvalidArgumentError(f"method must be one of {HASH_METHODS}, got method={method!r}")
    hash_size = check_int(hash_size, "hash_size", minimum=2, maximum=8)
    if method == "whash" and hash_size & (hash_size - 1):
        raise InvalidArgumentError(
            f"hash_size must be a power of two for whash, got hash_size={hash_size}"
        )
    import imagehash
    from PIL import Image

    funcs: dict[str, Any] = {
        "phash": imagehash.phash,
        "ahash": imagehash.average_hash,
        "dhash": imagehash.dhash,
        "whash": imagehash.whash,
    }
    func: Callable[..., Any] = funcs[method]
    out: list[int] = []
    for i, img in enumerate(images):
        if not isinstance(img, Image.Image):
            raise InvalidArgumentError(
                f"images must yield PIL.Image.Image objects, got {type(img).__name__} at index {i}"
            )
        try:
            h = func(img, hash_size=hash_size)
        except (OSError, ValueError) as exc:
            raise InputImageError(f"cannot hash image {i} ({img.mode} {img.size}): {exc}") from exc
        bits = np.asarray(h.hash, dtype=bool).ravel()
        value = 0
        for b in bits.tolist():
            value = (value << 1) | int(b)
        out.append(value)
    return np.asarray(out, dtype=np.uint64)


def _check_hashes(hashes: Any, n_bits: int) -> np.ndarray:
    arr = to_numpy(hashes)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"hashes must be 1-D, got hashes with shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.uint64)
    if arr.dtype == object:
        try:
            arr = np.array([int(v) for v in arr.tolist()], dtype=np.uint64)
        except (OverflowError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"hashes must be unsigned 64-bit integers: {exc}") from exc
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"hashes must be unsigned integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i":
        if int(arr.min()) < 0:
            raise InvalidArgumentError(
                f"hashes must be non-negative, got hashes[{int(np.argmin(arr))}]={int(arr.min())}"
            )
    out = arr.astype(np.uint64)
    if n_bits < 64 and int(out.max()) >> n_bits:
        bad = int(np.argmax(out >> np.uint64(n_bits)))
        raise InvalidArgumentError(
            f"hashes must fit in n_bits={n_bits} bits, got hashes[{bad}]={int(out[bad])}"
        )
    return out


def _chunks(n_bits: int, n_chunks: int) -> list[tuple[int, int]]:
    """(shift, width) of ``n_chunks`` contiguous chunks covering ``n_bits`` bits."""
    base, extra = divmod(n_bits, n_chunks)
    out = []
    shift = 0
    for i in range(n_chunks):
        width = base + (1 if i < extra else 0)
        out.append((shift, width))
        shift += width
    return out


def hamming_pairs(
    hashes: Any, threshold: int, *, n_bits: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(a, b)``, ``a < b``, of positions whose hashes differ in at most ``threshold``
    bits, found with multi-index hashing (see the module doc). Sorted by ``(a, b)``."""
    n_bits = check_int(n_bits, "n_bits", minimum=1, maximum=64)
    threshold = check_int(threshold, "threshold", minimum=0, maximum=n_bits - 1)
    h = _check_hashes(hashes, n_bits)
    n = h.shape[0]
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []

    def verify(a: np.ndarray, b: np.ndarray) -> None:
        if a.size == 0:
            return
        ok = popcount64(h[a] ^ h[b]) <= threshold
        lo = np.minimum(a[ok], b[ok])
        hi = np.maximum(a[ok], b[ok])
        found_a.append(lo)
        found_b.append(hi)

    for shift, width in _chunks(n_bits, threshold + 1):
        mask = np.uint64((1 << width) - 1)
        key = (h >> np.uint64(shift)) & mask
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        sizes = np.diff(np.r_[starts, n])
        bsize = np.repeat(sizes, sizes)
        small = sizes[(sizes >= 2) & (sizes <= _SMALL_BUCKET)]
        if small.size:
            for off in range(1, int(small.max())):
                i = np.arange(n - off)
                same = (sk[i] == sk[i + off]) & (bsize[i] <= _SMALL_BUCKET)
                verify(order[i[same]], order[i[same] + off])
        for start, size in zip(
            starts[sizes > _SMALL_BUCKET].tolist(),
            sizes[sizes > _SMALL_BUCKET].tolist(),
            strict=True,
        ):
            members = order[start : start + size]
            rows_per_block = max(1, (1 << 22) // size)
            for r0 in range(0, size, rows_per_block):
                r1 = min(size, r0 + rows_per_block)
                cols = members[r0:]
                x = h[members[r0:r1], None] ^ h[None, cols]
                ii, jj = np.nonzero(popcount64(x) <= threshold)
                upper = jj > ii  # column position r0+jj after row position r0+ii
                found_a.append(np.minimum(members[r0 + ii[upper]], cols[jj[upper]]))
                found_b.append(np.maximum(members[r0 + ii[upper]], cols[jj[upper]]))
    if not found_a:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    a = np.concatenate(found_a).astype(np.int64)
    b = np.concatenate(found_b).astype(np.int64)
    code = np.unique(a * n + b)
    return code // n, code % n


def _medoid_mirror(hashes: np.ndarray, mirror: np.ndarray, members: np.ndarray) -> int:
    """Like :func:`_medoid` with the distance ``min(d(h_a, h_b), d(h_a, m_b))``."""
    r = members.shape[0]
    sums = np.empty(r, dtype=np.int64)
    block = max(1, (1 << 21) // r)
    hb, mb = hashes[members], mirror[members]
    for r0 in range(0, r, block):
        r1 = min(r, r0 + block)
        d = np.minimum(popcount64(hb[r0:r1, None] ^ hb[None, :]),
                       popcount64(hb[r0:r1, None] ^ mb[None, :]))
        sums[r0:r1] = d.sum(axis=1)
    return int(members[int(np.argmin(sums))])


def _medoid(hashes: np.ndarray, members: np.ndarray) -> int:
    """Member (an index into ``hashes``) with the least sum of Hamming distances to the others;
    ``members`` sorted ascending, ties to the lowest index."""
    hm = hashes[members]
    uniq, inv, cnt = np.unique(hm, return_inverse=True, return_counts=True)
    r = uniq.shape[0]
    sums = np.empty(r, dtype=np.int64)
    block = max(1, (1 << 22) // r)
    for r0 in range(0, r, block):
        r1 = min(r, r0 + block)
        d = popcount64(uniq[r0:r1, None] ^ uniq[None, :])
        sums[r0:r1] = d @ cnt
    per_member = sums[inv]
    return int(members[int(np.argmin(per_member))])


@dataclass(frozen=True, eq=False)
class DedupResult:
    """The outcome of :func:`dedup_groups`.

    ``groups``: every near-duplicate group (connected component with >= 2 members) as a sorted
    int64 array of sample indices, groups ordered by their smallest index. ``keep``: sorted
    indices kept (all samples outside groups, one medoid per group, one per label in conflict
    groups). ``removed``: the sorted complement. ``conflicts``: the groups whose members carry
    more than one label (also listed in ``groups``).
    """

    groups: list[np.ndarray]
    keep: np.ndarray
    removed: np.ndarray
    conflicts: list[np.ndarray]
    hash_method: str
    threshold: int
    n_bits: int = 64
    mirror: bool = False
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False)

    def to_selection(self) -> Selection:
        """The kept samples as a :class:`Selection` with ``method="dedup-<hash>"``.

        De-duplication does not rank: each class's kept samples are in index order, and the
        classes are interleaved (:func:`dcqformat.select.result.interleave`).
        """
        lab = self.labels
        kept_labels = lab[self.keep]
        orders = {int(c): self.keep[kept_labels == c] for c in np.unique(kept_labels).tolist()}
        return Selection.from_ranking(
            method=f"dedup-{self.hash_method}",
            params={
                "hash": self.hash_method,
                "threshold": self.threshold,
                "n_bits": self.n_bits,
                "mirror_invariant": self.mirror,
                "grouping": "connected components of pairs within threshold",
                "representative": "medoid (least sum of Hamming distances, ties lowest index); "
                "one per label in label-conflict groups",
                "n_groups": len(self.groups),
                "n_conflicts": len(self.conflicts),
                "n_removed": int(self.removed.shape[0]),
            },
            seed=None,
            ranking=interleave(orders),
            labels=lab,
        )


def dedup_groups(
    hashes: Any,
    labels: Any = None,
    threshold: int = 10,
    *,
    hash_method: str = "phash",
    n_bits: int = 64,
    mirror_hashes: Any = None,
) -> DedupResult:
    """Group near-duplicate images by Hamming distance ``<= threshold`` and choose what to keep.

    ``hashes``: one unsigned hash per sample (canonical order), e.g. from
    :func:`perceptual_hashes`; ``labels``: class ids (``None``: one class); ``threshold`` in
    ``[0, n_bits - 1]`` (CE-Dedup's default is 10 of 64); ``hash_method`` is recorded for
    provenance only; ``n_bits``: how many low bits the hashes use (``hash_size**2``);
    ``mirror_hashes``: the hashes of the horizontally mirrored images, to match flipped copies
    too (see the module doc), or ``None``.
    """
    n_bits = check_int(n_bits, "n_bits", minimum=1, maximum=64)
    threshold = check_int(threshold, "threshold", minimum=0, maximum=n_bits - 1)
    if not isinstance(hash_method, str) or not hash_method:
        raise InvalidArgumentError(f"hash_method must be a non-empty string, got {hash_method!r}")
    h = _check_hashes(hashes, n_bits)
    n = h.shape[0]
    lab = (
        np.zeros(n, dtype=np.int64) if labels is None else check_labels(labels, n, n_name="hashes")
    )

    hm = None
    if mirror_hashes is not None:
        hm = _check_hashes(mirror_hashes, n_bits)
        if hm.shape != h.shape:
            raise InvalidArgumentError(
                f"mirror_hashes must have one hash per sample ({n}), got shape {hm.shape}"
            )
    uniq, inv = np.unique(h if hm is None else np.concatenate([h, hm]), return_inverse=True)
    inv = inv.ravel()
    a, b = (
        hamming_pairs(uniq, threshold, n_bits=n_bits)
        if uniq.shape[0] > 1
        else (
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=np.int64),
        )
    )
    u = uniq.shape[0]
    if hm is not None:  # an image's hash and mirror hash are one node pair
        a = np.concatenate([a, inv[:n]])
        b = np.concatenate([b, inv[n:]])
    graph = coo_matrix((np.ones(a.shape[0], dtype=np.int32), (a, b)), shape=(u, u)).tocsr()
    _, comp_u = connected_components(graph, directed=False)
    comp = comp_u[inv[:n]]

    def medoid(members: np.ndarray) -> int:
        return _medoid(h, members) if hm is None else _medoid_mirror(h, hm, members)

    order = np.argsort(comp, kind="stable")  # members of a component in increasing index
    sc = comp[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if n else np.empty(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    groups = [
        order[s : s + z] for s, z in zip(starts.tolist(), sizes.tolist(), strict=True) if z >= 2
    ]
    groups.sort(key=lambda g: int(g[0]))

    keep_mask = np.ones(n, dtype=bool)
    conflicts: list[np.ndarray] = []
    for g in groups:
        keep_mask[g] = False
        gl = lab[g]
        distinct = np.unique(gl)
        if distinct.shape[0] > 1:
            conflicts.append(g)
            for c in distinct.tolist():
                keep_mask[medoid(g[gl == c])] = True
        else:
            keep_mask[medoid(g)] = True
    for g in groups:
        g.setflags(write=False)
    keep = np.flatnonzero(keep_mask).astype(np.int64)
    removed = np.flatnonzero(~keep_mask).astype(np.int64)
    return DedupResult(
        groups=groups,
        keep=keep,
        removed=removed,
        conflicts=conflicts,
        hash_method=hash_method,
        threshold=threshold,
        n_bits=n_bits,
        mirror=hm is not None,
        labels=lab,
    )
