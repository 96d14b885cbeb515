"""convert() from every kind of source (issue #11): an ImageFolder, a uint8 array and a
map-style dataset decode to the same images, clusters and palettes for the same pixels."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_encode_support import FASHION, QUICK, make_folder, need

from dcqformat.encode.images import LoadOptions, load_image
from dcqformat.encode.pipeline import convert
from dcqformat.encode.scan import scan_image_folder
from dcqformat.encode.sources import ArraySource, DatasetSource, item_to_image, open_source
from dcqformat.errors import InputImageError, InvalidArgumentError
from dcqformat.format.reader import DCQFile

FAST = {**QUICK, "threads": 1}


def decoded(path: Path) -> dict[str, Any]:
    """Decoded pixels, clusters, palettes and labels of a file (not its source paths)."""
    with DCQFile(path) as f:
        h = hashlib.sha256()
        for i in range(len(f)):
            h.update(f.decode(i).tobytes())
        return {"pixels": h.hexdigest(), "clusters": np.asarray(f.clusters).tolist(),
                "palettes": f.palettes.tobytes(), "labels": np.asarray(f.labels).tolist(),
                "classes": f.classes, "n": len(f)}


class PilDataset:
    """A torchvision-style map dataset over an ImageFolder: PIL images, ``classes``."""

    def __init__(self, root: Path) -> None:
        listing = scan_image_folder(root)
        self.classes = list(listing.classes)
        self.items = [(e.path, e.label) for e in listing.entries]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        path, label = self.items[i]
        with Image.open(path) as im:
            im.load()
            return im.copy(), label


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("src") / "src", per_class=5, rgba=True)


def test_a_torch_style_dataset_gives_the_folder_file(folder: Path, tmp_path: Path) -> None:
    a = convert(folder, tmp_path / "folder.dcq", **FAST)
    b = convert(PilDataset(folder), tmp_path / "ds.dcq", **FAST)
    assert decoded(tmp_path / "folder.dcq") == decoded(tmp_path / "ds.dcq")
    assert (a.source_kind, b.source_kind) == ("folder", "dataset")
    prov = DCQFile(tmp_path / "ds.dcq").provenance
    assert prov["source"]["kind"] == "dataset" and prov["source"]["length"] == 15
    assert prov["source"]["content_sha256"] == \
        DCQFile(tmp_path / "folder.dcq").provenance["source"]["content_sha256"]
    assert DCQFile(tmp_path / "ds.dcq").source_paths in (None, [""] * 15)


def test_an_array_gives_the_folder_file(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", per_class=4, extra_sizes=False)
    listing = scan_image_folder(src)
    images = np.stack([load_image(e.path) for e in listing.entries])
    labels = np.array([e.label for e in listing.entries])
    convert(src, tmp_path / "folder.dcq", **FAST)
    s = convert(images, tmp_path / "array.dcq", labels=labels, classes=listing.classes, **FAST)
    assert decoded(tmp_path / "folder.dcq") == decoded(tmp_path / "array.dcq")
    assert s.source_kind == "array" and s.source_bytes == 0
    assert "no source files (a array source)" in s.format() or "no source files" in s.format()


def test_tensor_and_array_items_in_both_layouts() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    opts = LoadOptions()
    assert np.array_equal(item_to_image(hwc, opts, "x"), hwc)
    assert np.array_equal(item_to_image(np.moveaxis(hwc, -1, 0).copy(), opts, "x"), hwc)
    assert np.array_equal(item_to_image(torch.from_numpy(hwc).permute(2, 0, 1), opts, "x"), hwc)
    grey = rng.integers(0, 256, (5, 9), dtype=np.uint8)
    assert np.array_equal(item_to_image(grey, opts, "x"), grey[..., None])
    rgba = np.dstack([hwc, np.zeros((6, 7), np.uint8)])
    assert (item_to_image(rgba, opts, "x") == 255).all()  # transparent -> white background
    with pytest.raises(InputImageError, match="uint8"):
        item_to_image(hwc.astype(np.float32), opts, "item 3")
    with pytest.raises(InputImageError, match="expected a PIL image"):
        item_to_image("nope", opts, "item 3")


def test_class_names_and_labels() -> None:
    imgs = np.zeros((4, 3, 3), np.uint8)
    assert ArraySource(imgs, [0, 2, 1, 2], None).classes == ("0", "1", "2")
    assert ArraySource(imgs, [0, 1, 1, 0], ["cat", "dog"]).classes == ("cat", "dog")
    with pytest.raises(InvalidArgumentError, match="needs labels"):
        ArraySource(imgs, None, None)
    with pytest.raises(InvalidArgumentError, match="4 integers"):
        ArraySource(imgs, [0, 1], None)
    with pytest.raises(InvalidArgumentError, match=">= 0"):
        ArraySource(imgs, [0, -1, 0, 0], None)
    with pytest.raises(InvalidArgumentError, match="2 class names"):
        ArraySource(imgs, [0, 1, 2, 0], ["a", "b"])
    with pytest.raises(InvalidArgumentError, match="uint8"):
        ArraySource(imgs.astype(np.int16), [0, 0, 0, 0], None)

    class NoTargets:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return np.full((2, 2), i, np.uint8), i % 2

    ds = DatasetSource(NoTargets(), None, ["even", "odd"])
    assert ds.labels.tolist() == [0, 1, 0] and ds.classes == ("even", "odd")
    with pytest.raises(InvalidArgumentError, match="source must be"):
        open_source(3.5)
    with pytest.raises(InvalidArgumentError, match="labels= and classes="):
        open_source("somewhere", labels=[0])


def test_a_failing_item_is_an_input_error(tmp_path: Path) -> None:
    class Broken:
        classes = ["a", "b"]
        targets = [0, 1, 0, 1]

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            if i == 2:
                raise KeyError("gone")
            return np.full((8, 8, 3), 40 * i, np.uint8), self.targets[i]

    with pytest.raises(InputImageError, match="item 2 .*KeyError"):
        convert(Broken(), tmp_path / "x.dcq", **{**FAST, "clusters": 1})
    assert not (tmp_path / "x.dcq").exists()
    s = convert(Broken(), tmp_path / "y.dcq", **{**FAST, "clusters": 1, "on_error": "skip"})
    assert s.images == 3 and "KeyError" in s.skipped[0]["error"]


def _idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.mark.slow
def test_fashion_mnist_from_its_arrays_equals_the_folder_route(tmp_path: Path) -> None:
    need(FASHION)
    imgs = _idx(FASHION / "train-images-idx3-ubyte.gz")[:2000]
    labels = _idx(FASHION / "train-labels-idx1-ubyte.gz")[:2000]
    order = np.argsort(labels, kind="stable")  # the folder route lists class by class
    imgs, labels = imgs[order], labels[order]
    names = [f"c{c}" for c in range(10)]
    root = tmp_path / "fm"
    for i, (img, lab) in enumerate(zip(imgs, labels, strict=True)):
        d = root / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    kw = {"progress": False, "device": "cpu", "threads": 1, "epochs": 1}
    convert(root, tmp_path / "folder.dcq", **kw)
    convert(imgs, tmp_path / "array.dcq", labels=labels, classes=names, **kw)
    assert decoded(tmp_path / "folder.dcq") == decoded(tmp_path / "array.dcq")


def test_a_hugging_face_dataset(folder: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the optional 'datasets' package is absent")
    listing = scan_image_folder(folder)
    ds = datasets.Dataset.from_dict(
        {"image": [str(e.path) for e in listing.entries],
         "label": [e.label for e in listing.entries]},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.ClassLabel(names=list(listing.classes))}))
    convert(folder, tmp_path / "folder.dcq", **FAST)
    convert(ds, tmp_path / "hf.dcq", **FAST)
    assert decoded(tmp_path / "folder.dcq") == decoded(tmp_path / "hf.dcq")
