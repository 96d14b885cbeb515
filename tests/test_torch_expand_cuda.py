"""expand on a CUDA device: the same byte-for-byte equality with DCQFile.decode as on the CPU,
batched palette transforms equal to the per-sample CPU ones, and pinned DataLoader batches.
Marked ``gpu``: skipped where no CUDA device is present (the CPU tests hold the same code)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from test_torch_expand import MEAN, STD, dcq_files, reference_float, write
from torch.utils.data import DataLoader

from dcqformat import DCQFile
from dcqformat.torch import DCQDataset, PaletteColorJitter, PaletteGrayscale, expand

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@settings(max_examples=40, deadline=None)
@given(params=dcq_files())
def test_cuda_expand_equals_decode(params: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "x.dcq", params)
        f = DCQFile(path)
        batch = DCQDataset(path, output="packed").pack(list(range(len(f)))[::-1])
        images, labels = expand(batch.pin_memory(), "cuda")
        floats, _ = expand(batch, "cuda", dtype=torch.float32,
                           normalize=(MEAN[:f.channels], STD[:f.channels]))
        torch.cuda.synchronize()
        assert labels.device.type == "cuda"
        for b, i in enumerate(range(len(f))[::-1]):
            want = f.decode(i, "chw")
            assert images[b].device.type == "cuda" and np.array_equal(images[b].cpu().numpy(), want)
            assert torch.equal(floats[b].cpu(), reference_float(want, MEAN, STD))
        f.close()


def test_cuda_palette_transform_equals_the_cpu(tmp_path: Path) -> None:
    params = {"bits": 3, "channels": 3, "sizes": [(16, 16)] * 12, "palette_size": 8, "clusters": 3,
              "encoding": "zstd", "patch_size": 4, "seed": 5, "keep_first": True}
    batch = DCQDataset(write(tmp_path / "j.dcq", params), output="packed").pack(list(range(12)))

    def jitter(seed: int) -> PaletteColorJitter:
        return PaletteColorJitter(0.4, 0.4, 0.4, generator=torch.Generator().manual_seed(seed))

    gpu, _ = expand(batch, "cuda", palette_transform=jitter(3))
    cpu, _ = expand(batch, "cpu", palette_transform=jitter(3))
    assert torch.equal(gpu.cpu(), cpu)
    grey, _ = expand(batch, "cuda", palette_transform=PaletteGrayscale(1.0))
    assert (grey[:, 0] == grey[:, 1]).all()


def test_pinned_dataloader_to_cuda(tmp_path: Path) -> None:
    params = {"bits": 2, "channels": 3, "sizes": [(32, 32)] * 64, "palette_size": 4, "clusters": 4,
              "encoding": "raw", "patch_size": None, "seed": 1}
    path = write(tmp_path / "l.dcq", params)
    f = DCQFile(path)
    loader = DataLoader(DCQDataset(path, output="packed"), batch_size=16, num_workers=2, pin_memory=True)
    for batch in loader:
        assert batch.data.is_pinned()
        images, _ = expand(batch, "cuda")
        want = np.stack([f.decode(int(i), "chw") for i in batch.indices])
        assert np.array_equal(images.cpu().numpy(), want)
