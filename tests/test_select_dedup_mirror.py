"""Mirror-aware de-duplication (``dedup_groups(..., mirror_hashes=...)``) and the EL2N epoch
hook of the proxy training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from dcqformat.encode.model import module_fingerprint, train_proxy
from dcqformat.errors import InvalidArgumentError
from dcqformat.select import dedup_groups, perceptual_hashes

skdata = pytest.importorskip("skimage.data")


def _photos() -> list[Image.Image]:
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins"):
        a = getattr(skdata, name)()
        out.append(Image.fromarray(a).resize((96, 64), Image.Resampling.LANCZOS))
    return out


def test_flipped_copies_match_only_with_mirror_hashes() -> None:
    ims = _photos()
    ims.append(ImageOps.mirror(ims[0]))  # 6: flipped astronaut
    ims.append(ImageOps.mirror(ims[3]).resize((48, 32)))  # 7: flipped, half-size rocket
    h = perceptual_hashes(ims, "phash")
    m = perceptual_hashes([ImageOps.mirror(i) for i in ims], "phash")
    plain = dedup_groups(h, None, 8)
    assert plain.groups == []  # pHash is not flip-invariant
    flip = dedup_groups(h, None, 8, mirror_hashes=m)
    assert [g.tolist() for g in flip.groups] == [[0, 6], [3, 7]]
    assert flip.removed.shape[0] == 2 and flip.mirror
    assert flip.to_selection().params["mirror_invariant"] is True
    # order independence: reversing the input gives the same partition
    rev = dedup_groups(h[::-1].copy(), None, 8, mirror_hashes=m[::-1].copy())
    n = len(ims)
    assert sorted(sorted(n - 1 - i for i in g.tolist()) for g in rev.groups) == [[0, 6], [3, 7]]


def test_mirror_hashes_must_match_the_hashes() -> None:
    with pytest.raises(InvalidArgumentError, match="mirror_hashes"):
        dedup_groups(np.arange(4, dtype=np.uint64), None, 2, mirror_hashes=np.arange(3, dtype=np.uint64))


def test_epoch_hook_sees_every_epoch_and_changes_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 16, 16), generator=g, dtype=torch.uint8)
    y = torch.arange(64) % 4
    plain = train_proxy(x, y, 4, epochs=2, seed=3)
    seen: list[tuple[int, str]] = []
    hooked = train_proxy(x, y, 4, epochs=2, seed=3,
                         on_epoch_model=lambda e, net: seen.append((e, module_fingerprint(net))))
    assert plain.identity["sha256"] == hooked.identity["sha256"]
    assert [e for e, _ in seen] == [0, 1]
    assert seen[0][1] != seen[1][1] and seen[1][1] == hooked.identity["sha256"]
