"""dcqformat.torch.expand: packed batches expanded with torch ops equal DCQFile.decode byte for
byte (every q in 1..8, channels 1 and 3, raw and zstd payloads, patch masks, mixed sizes), the
normalised float output equals the float32 ops on the decoded image exactly, and bad input is a
DcqError. All on CPU tensors; the same code runs on CUDA and MPS."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat import DCQFile, DCQWriter
from dcqformat.codecs.reference import pack_ref, unpack_ref
from dcqformat.errors import DcqError, InvalidArgumentError, PayloadError
from dcqformat.format import masks as M
from dcqformat.torch import DCQDataset, PackedBatch, expand
from dcqformat.torch.unpack import unpack_bits

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@st.composite
def dcq_files(draw: st.DrawFn) -> dict:
    """Parameters of a random small .dcq file (written by write())."""
    bits = draw(st.integers(1, 8))
    uniform = draw(st.booleans())
    n = draw(st.integers(1, 6))
    sizes = [(draw(st.integers(1, 11)), draw(st.integers(1, 11)))] * n if uniform else \
        [(draw(st.integers(1, 11)), draw(st.integers(1, 11))) for _ in range(n)]
    return {
        "bits": bits, "channels": draw(st.sampled_from([1, 3])), "sizes": sizes,
        "palette_size": draw(st.integers(1, 1 << bits)), "clusters": draw(st.integers(1, 4)),
        "encoding": draw(st.sampled_from(["raw", "zstd"])),
        "patch_size": draw(st.sampled_from([None, None, 1, 2, 3, 5])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def write(path: Path, p: dict) -> Path:
    rng = np.random.default_rng(p["seed"])
    k, ch = p["palette_size"], p["channels"]
    with DCQWriter(path, bits=p["bits"], channels=ch, classes=["a", "b", "c"], palette_size=k,
                   payload_encoding=p["encoding"], patch_size=p["patch_size"]) as w:
        w.set_palettes(rng.integers(0, 256, (p["clusters"], k, ch), dtype=np.uint8))
        for h, wd in p["sizes"]:
            kw = {}
            if p["patch_size"] is not None:
                keep = rng.random(M.grid_shape(h, wd, p["patch_size"])) < rng.choice([0.0, 0.5, 1.0])
                keep.flat[0] |= bool(p.get("keep_first", False))  # no sample with every patch dropped
                kw["keep_mask"] = keep
            w.add_sample(rng.integers(0, k, (h, wd), dtype=np.uint8), cluster=int(rng.integers(p["clusters"])),
                         label=int(rng.integers(3)), **kw)
    return path


def reference_float(img: np.ndarray, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> torch.Tensor:
    """The float32 ops the documentation promises, applied to a decoded C×H×W image."""
    x = torch.from_numpy(img).to(torch.float32) / 255
    if mean is not None and std is not None:
        c = img.shape[0]
        x = (x - torch.tensor(mean[:c], dtype=torch.float32).view(-1, 1, 1)) / \
            torch.tensor(std[:c], dtype=torch.float32).view(-1, 1, 1)
    return x


@settings(max_examples=60, deadline=None)
@given(params=dcq_files(), order_seed=st.integers(0, 1000))
def test_expand_equals_decode(params: dict, order_seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "x.dcq", params)
        f = DCQFile(path)
        ds = DCQDataset(path, output="packed")
        order = np.random.default_rng(order_seed).permutation(len(f)).tolist()  # any batch order
        batch = ds.pack(order)
        images, labels = expand(batch, device="cpu")
        assert labels.tolist() == [int(f.labels[i]) for i in order]
        uniform = len(set(params["sizes"])) == 1
        assert isinstance(images, torch.Tensor) == uniform
        if uniform:
            assert images.shape == (len(order), params["channels"], *params["sizes"][0])
        for b, i in enumerate(order):
            want = f.decode(i, "chw")
            assert images[b].dtype == torch.uint8 and np.array_equal(images[b].numpy(), want)
        channels = params["channels"]
        floats, _ = expand(batch, device="cpu", dtype=torch.float32, normalize=(MEAN[:channels], STD[:channels]))
        plain, _ = expand(batch, device="cpu", dtype=torch.float64)
        for b, i in enumerate(order):
            want = f.decode(i, "chw")
            assert torch.equal(floats[b], reference_float(want, MEAN, STD))  # tolerance 0
            assert torch.equal(plain[b], reference_float(want, None, None).to(torch.float64))
        f.close()


@settings(max_examples=80, deadline=None)
@given(bits=st.integers(1, 8), n=st.integers(0, 70), rows=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_unpack_bits_equals_the_reference(bits: int, n: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 1 << bits, (rows, n))
    packed = np.stack([pack_ref(v, bits) for v in values]) if n else np.zeros((rows, 0), np.uint8)
    extra = rng.integers(0, 256, (rows, int(rng.integers(0, 3))), dtype=np.uint8)  # bytes beyond: ignored
    got = unpack_bits(torch.from_numpy(np.concatenate([packed, extra], 1)), n, bits)
    assert got.dtype == torch.uint8 and got.shape == (rows, n)
    assert np.array_equal(got.numpy(), np.stack([unpack_ref(p, n, bits) for p in packed]) if n else values)


def test_spec_worked_examples() -> None:  # spec §5 table
    for q, indices, packed in [(1, [1, 0, 1, 1, 0, 0, 1, 0, 1], [0x4D, 0x01]), (2, [3, 1, 2, 0, 3], [0x27, 0x03]),
                               (3, [5, 3, 7], [0xDD, 0x01]), (5, [31, 3, 16], [0x7F, 0x40])]:
        rows = torch.tensor([packed], dtype=torch.uint8)
        assert unpack_bits(rows, len(indices), q).tolist() == [indices]
    with pytest.raises(InvalidArgumentError, match="cannot hold"):
        unpack_bits(torch.zeros((1, 1), dtype=torch.uint8), 3, 3)


def hand_batch(values: np.ndarray, q: int, k: int, **kw: object) -> PackedBatch:
    """A one-sample unmasked PackedBatch of the 1×n index map ``values`` (``kw`` replaces fields)."""
    data = pack_ref(values, q)
    fields = dict(
        data=torch.from_numpy(data), offsets=torch.tensor([0, data.size]), heights=torch.tensor([1]),
        widths=torch.tensor([values.size]), stored=torch.tensor([values.size]), labels=torch.tensor([0]),
        indices=torch.tensor([7]), palettes=torch.arange(k * 3, dtype=torch.uint8).reshape(1, k, 3),
        palette_ids=torch.tensor([0]), bits=q)
    fields.update(kw)
    return PackedBatch(**fields)  # type: ignore[arg-type]


def test_index_at_or_above_k_is_a_payload_error() -> None:
    ok = hand_batch(np.array([0, 1, 2, 1]), 2, 3)
    images, _ = expand(ok, "cpu")
    assert images[0, :, 0, 2].tolist() == [6, 7, 8]
    with pytest.raises(PayloadError, match="dataset position 7.*palette_size 3"):
        expand(hand_batch(np.array([0, 3, 1]), 2, 3), "cpu")
    full, _ = expand(hand_batch(np.array([0, 3, 1]), 2, 4), "cpu")  # K = 2**q: nothing to check
    assert full[0, 0, 0].tolist() == [0, 9, 3]


def test_masked_kept_index_above_k_is_a_payload_error() -> None:
    keep = M.pack_mask(np.array([True, False]))
    batch = PackedBatch(
        data=torch.from_numpy(pack_ref(np.array([2, 3]), 2)), offsets=torch.tensor([0, 1]),
        heights=torch.tensor([1]), widths=torch.tensor([4]), stored=torch.tensor([2]),
        labels=torch.tensor([1]), indices=torch.tensor([0]),
        palettes=torch.zeros((1, 3, 1), dtype=torch.uint8), palette_ids=torch.tensor([0]), bits=2,
        patch_size=2, keep=torch.from_numpy(keep), keep_offsets=torch.tensor([0, 1]),
        fills=torch.tensor([1], dtype=torch.uint8), fill_offsets=torch.tensor([0, 1]))
    with pytest.raises(PayloadError, match="palette_size 3"):
        expand(batch, "cpu")


@pytest.mark.parametrize(("change", "match"), [
    ({"offsets": torch.tensor([0, 5])}, "offsets"),
    ({"stored": torch.tensor([9])}, "bytes"),
    ({"palette_ids": torch.tensor([1])}, "palette id"),
    ({"heights": torch.tensor([0])}, "not positive"),
    ({"palettes": torch.zeros((1, 4, 2), dtype=torch.uint8)}, "palettes"),
    ({"labels": torch.tensor([0.0])}, "labels"),
    ({"bits": 9}, "bits"),
    ({"keep": torch.ones(1, dtype=torch.uint8)}, "without a patch_size"),
    ({"patch_size": 2}, "keep_offsets"),
    ({"offsets": torch.tensor([0, 1], device="meta")}, "stay on the CPU"),
])
def test_inconsistent_batches_are_refused(change: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        hand_batch(np.array([0, 1, 2, 1]), 2, 4, **change)


def test_masked_batch_checks(tmp_path: Path) -> None:
    with DCQWriter(tmp_path / "m.dcq", 2, 1, ["a"], palette_size=3, patch_size=2) as w:
        w.set_palettes(np.array([[[0], [100], [200]]], np.uint8))
        w.add_sample(np.zeros((3, 5), np.uint8), 0, 0, keep_mask=np.array([[1, 0, 1], [0, 1, 1]], bool))
    batch = DCQDataset(tmp_path / "m.dcq", output="packed").pack([0])
    assert batch.keep.tolist() == [0b110101] and batch.stored.tolist() == [4 + 2 + 2 + 1]
    fields = {k: getattr(batch, k) for k in batch.__dataclass_fields__}
    for change, match in [({"fills": torch.tensor([0, 3], dtype=torch.uint8)}, "fill index"),
                          ({"keep": torch.tensor([0b110011], dtype=torch.uint8)}, "keep mask keeps 11"),
                          ({"keep": torch.tensor([0b1110101], dtype=torch.uint8)}, "padding"),
                          ({"fills": torch.tensor([0], dtype=torch.uint8)}, "fill_offsets"),
                          ({"keep_offsets": torch.tensor([0, 2])}, "keep_offsets"),
                          ({"patch_size": 0}, "patch_size")]:
        with pytest.raises(InvalidArgumentError, match=match):
            PackedBatch(**dict(fields, **change))


def test_output_options_and_errors(tmp_path: Path) -> None:
    params = {"bits": 3, "channels": 3, "sizes": [(6, 5)] * 4, "palette_size": 8, "clusters": 2,
              "encoding": "zstd", "patch_size": None, "seed": 1}
    path = write(tmp_path / "x.dcq", params)
    batch = DCQDataset(path, output="packed").pack([3, 1])
    half, _ = expand(batch, "cpu", dtype=torch.float16, normalize=(0.5, 0.25))
    assert half.dtype == torch.float16
    f = DCQFile(path)
    ref = ((torch.from_numpy(f.decode(3, "chw")).float() / 255 - 0.5) / 0.25).half()
    assert torch.equal(half[0], ref)
    for kwargs, match in [({"dtype": torch.int32}, "dtype"), ({"normalize": (MEAN, STD)}, "floating"),
                          ({"dtype": torch.float32, "normalize": ((0.1, 0.2), (1, 1))}, "3 means"),
                          ({"dtype": torch.float32, "normalize": (0.5, 0.0)}, "non-zero"),
                          ({"dtype": torch.float32, "normalize": 0.5}, "mean, std"),
                          ({"device": "cuda:7"}, "device|CUDA"), ({"device": "tpu"}, "device")]:
        with pytest.raises(DcqError, match=match):
            expand(batch, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="PackedBatch"):
        expand((torch.zeros(1), torch.zeros(1)), "cpu")  # type: ignore[arg-type]
    empty, labels = expand(DCQDataset(path, output="packed").pack([]), "cpu")
    assert empty == [] and labels.shape == (0,)
    auto, _ = expand(batch)  # "auto": CUDA when present, else the CPU
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_palette_transform_in_expand_equals_the_dataset_per_sample(tmp_path: Path) -> None:
    """The same generator state gives the same per-sample jitter as DCQDataset(palette_transform=)."""
    from dcqformat.torch import PaletteColorJitter, PaletteCompose, PaletteGrayscale

    params = {"bits": 2, "channels": 3, "sizes": [(8, 8), (5, 6)] * 5, "palette_size": 4, "clusters": 3,
              "encoding": "raw", "patch_size": 3, "seed": 9, "keep_first": True}
    path = write(tmp_path / "j.dcq", params)

    def make(seed: int) -> PaletteCompose:
        g = torch.Generator().manual_seed(seed)
        return PaletteCompose([PaletteColorJitter(0.4, 0.4, 0.4, generator=g), PaletteGrayscale(0.3, generator=g)])

    order = [4, 0, 9, 3, 3, 7]
    images, _ = expand(DCQDataset(path, output="packed").pack(order), "cpu", palette_transform=make(11))
    assert make(11).needs_counts  # contrast with the image centre: counts of the stored pixels
    decoded = DCQDataset(path, palette_transform=make(11))
    per_sample = decoded.__getitems__(order)
    assert all(torch.equal(images[b], per_sample[b][0]) for b in range(len(order)))
    plain, _ = expand(DCQDataset(path, output="packed").pack(order), "cpu", palette_transform=lambda p: 255 - p)
    f = DCQFile(path)
    assert all(np.array_equal(plain[b].numpy(), 255 - f.decode(i, "chw")) for b, i in enumerate(order))
