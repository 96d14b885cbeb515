"""What ``convert()`` can read: an ImageFolder, a uint8 array, or a map-style dataset.

Every source is an :class:`ImageSource`: a fixed number of images at positions ``0..N-1`` (the
sample order of the file), their integer ``labels`` known up front, class names, and
``load(position)`` giving a uint8 ``[H, W, C]`` array (C = 1 grey or 3 sRGB) by the same rules
as an image file (:mod:`dcqformat.encode.images`: alpha flattened onto the background,
``max_side`` downscaling, the ``max_pixels`` guard). Everything after loading -- the proxy,
analysis, clusters, selection, patch masks, scale-out shares -- sees only positions, so it works
the same on every source.

==================  ========================================================================
source              rules
==================  ========================================================================
folder path         an ImageFolder (``root/<class>/<image>``) in torchvision's order, see
                    :mod:`dcqformat.encode.scan`; source paths and sizes are recorded
uint8 array         ``[N, H, W]`` (grey) or ``[N, H, W, C]`` with C = 1, 2 (grey + alpha), 3
                    (RGB) or 4 (RGBA), with ``labels`` (N integers) and optionally ``classes``
map-style dataset   ``len(ds)`` and ``ds[i]`` giving ``(image, label)`` -- a torch ``Dataset``
                    such as a torchvision-style CIFAR object -- or a Hugging Face
                    ``datasets.Dataset`` whose rows hold an image and a label column. The image
                    may be a PIL image (any mode, as an image file), or a uint8 array / tensor
                    ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` (C in 1..4; a tensor whose first
                    dimension is 1..4 and last is not is read as CHW, any other as HWC)
==================  ========================================================================

Class names: the source's ``classes`` attribute (torchvision datasets, the folder names), a
Hugging Face ``ClassLabel`` column's names, else the ``classes=`` argument, else the label
numbers ``"0".."L-1"``. Labels: the dataset's ``targets`` attribute or label column when it has
one, else one pass over the items (which loads every image once; give ``labels=`` to avoid it).

Each source describes itself for the provenance (:meth:`ImageSource.provenance`): its kind, its
length and, for folders, the listing hash; the analyse pass adds a content digest of the loaded
pixels (:func:`content_digest`).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcqformat.encode.images import LoadOptions, array_to_image, load_image, pil_to_image
from dcqformat.encode.scan import FolderListing, printable, scan_image_folder
from dcqformat.errors import InputImageError, InvalidArgumentError

__all__ = ["ImageSource", "FolderSource", "ArraySource", "DatasetSource", "SubsetSource",
           "open_source",
           "content_digest", "image_digest"]


class ImageSource(ABC):
    """N images with labels (see the module docstring); subclasses implement :meth:`load`."""

    kind = "abstract"

    def __init__(self, classes: Sequence[str], labels: np.ndarray, where: str) -> None:
        self.classes: tuple[str, ...] = tuple(classes)
        self.labels = labels
        self.where = where
        #: images the scan could not list (``{"path", "error"}``): fail or skip them up front
        self.rejected: list[dict[str, str]] = []
        #: directories and files the scan left out on purpose (``{"path", "reason"}``)
        self.scan_skipped: list[dict[str, str]] = []

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def relpath(self, pos: int) -> str:
        """The source path recorded for position ``pos`` ("" when the source has none)."""
        return ""

    def size(self, pos: int) -> int:
        """Source bytes of position ``pos`` (-1 when it is not a file)."""
        return -1

    @abstractmethod
    def load(self, pos: int, opts: LoadOptions) -> np.ndarray:
        """The image at ``pos`` as a writable uint8 ``[H, W, 1|3]`` array, or InputImageError."""

    def check_unchanged(self, pos: int) -> None:  # noqa: B027 (only file sources can check)
        """Raise InputImageError when the image at ``pos`` changed since the scan (files)."""

    def provenance(self) -> dict[str, Any]:
        """What the file's provenance records about the source."""
        return {"kind": self.kind, "length": len(self), "classes": list(self.classes)}

    @property
    def total_bytes(self) -> int:
        """Bytes of the source files (0 when the source is not files)."""
        return 0


class FolderSource(ImageSource):
    """An ImageFolder, scanned once in canonical order."""

    kind = "folder"

    def __init__(self, listing: FolderListing) -> None:
        labels = np.array([e.label for e in listing.entries], dtype=np.int64)
        super().__init__(listing.classes, labels, repr(str(listing.root)))
        self.listing = listing
        self.entries = listing.entries
        self.rejected = [{"path": r["path"], "error": r["reason"]} for r in listing.rejected]
        self.scan_skipped = list(listing.skipped)

    def relpath(self, pos: int) -> str:
        """The listed file's path relative to the root (POSIX)."""
        return self.entries[pos].relpath

    def size(self, pos: int) -> int:
        """The listed file's size in bytes at scan time (-1 for a dangling link)."""
        return self.entries[pos].size

    def load(self, pos: int, opts: LoadOptions) -> np.ndarray:
        """The listed file at ``pos``, read and decoded by :func:`load_image`."""
        return load_image(self.entries[pos].path, opts)

    def check_unchanged(self, pos: int) -> None:
        """Raise InputImageError when the file at ``pos`` is gone or its size is not the scan's."""
        entry = self.entries[pos]
        try:
            size = entry.path.stat().st_size
        except OSError as e:
            raise InputImageError(f"{str(entry.path)!r} disappeared during the conversion "
                                  f"({e.strerror or e})") from e
        if size != entry.size:
            raise InputImageError(f"{str(entry.path)!r} changed during the conversion")

    def provenance(self) -> dict[str, Any]:
        """The base record plus the root, listing hash, files and bytes listed, and what the scan
        skipped."""
        lst = self.listing
        return {**super().provenance(), "root": printable(str(lst.root)),
                "listing_sha256": lst.listing_hash, "files_listed": len(lst.entries),
                "bytes_listed": lst.total_bytes, "scan_skipped": list(lst.skipped)}

    @property
    def total_bytes(self) -> int:
        """The bytes of every listed source file, counted once (the listing's, at scan time)."""
        return self.listing.total_bytes


class ArraySource(ImageSource):
    """A uint8 array ``[N, H, W]`` or ``[N, H, W, C]`` (C in 1..4) with N labels."""

    kind = "array"

    def __init__(self, images: np.ndarray, labels: Any, classes: Sequence[str] | None) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[0] < 1 \
                or (images.ndim == 4 and not 1 <= images.shape[3] <= 4):
            raise InvalidArgumentError(
                "an array source must be uint8 [N, H, W] or [N, H, W, C] with C in 1..4, got "
                f"{images.dtype} {images.shape}")
        if labels is None:
            raise InvalidArgumentError("an array source needs labels=... (one integer per image)")
        lab = _check_labels(labels, images.shape[0])
        super().__init__(_class_names(classes, lab), lab, f"array {images.dtype} {images.shape}")
        self.images = images

    def load(self, pos: int, opts: LoadOptions) -> np.ndarray:
        """Image ``pos`` of the array, by the rules of an image file (:func:`array_to_image`)."""
        return array_to_image(self.images[pos], opts, f"image {pos}")


class DatasetSource(ImageSource):
    """A map-style dataset: ``ds[i]`` is ``(image, label)`` or a row with image and label
    columns (Hugging Face ``datasets.Dataset``)."""

    kind = "dataset"

    def __init__(self, ds: Any, labels: Any, classes: Sequence[str] | None) -> None:
        self.ds = ds
        self.image_key, self.label_key, hf_names = _hf_columns(ds)
        n = len(ds)
        if n < 1:
            raise InvalidArgumentError(f"the dataset {type(ds).__name__} is empty")
        if labels is None:
            labels = _dataset_labels(ds, self.label_key, n)
        lab = _check_labels(labels, n)
        names = getattr(ds, "classes", None) or hf_names or classes
        super().__init__(_class_names(names, lab), lab, f"{type(ds).__name__} of {n} items")

    def _item(self, pos: int) -> tuple[Any, int]:
        try:
            item = self.ds[pos]
        except Exception as e:  # a user dataset may raise anything
            raise InputImageError(f"item {pos} of {self.where}: reading it raised "
                                  f"{type(e).__name__}: {e}") from e
        if self.image_key is not None:
            return item[self.image_key], int(item[self.label_key])
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputImageError(f"item {pos} of {self.where}: expected (image, label), got "
                                  f"{type(item).__name__}")
        return item[0], _int_label(item[1], pos)

    def load(self, pos: int, opts: LoadOptions) -> np.ndarray:
        """Item ``pos``'s image as an encoder array; InputImageError when the item fails to read or
        its label is not the one read up front."""
        image, label = self._item(pos)
        if label != int(self.labels[pos]):
            raise InputImageError(f"item {pos} of {self.where}: label {label} differs from the "
                                  f"label {int(self.labels[pos])} read earlier")
        return item_to_image(image, opts, f"item {pos}")

    def provenance(self) -> dict[str, Any]:
        """The base record plus the dataset's type (``module.Class``)."""
        return {**super().provenance(), "type": f"{type(self.ds).__module__}.{type(self.ds).__name__}"}


class SubsetSource(ImageSource):
    """The images of ``parent`` at ``positions`` (in that order), e.g. the planner's sample."""

    kind = "subset"

    def __init__(self, parent: ImageSource, positions: Sequence[int] | np.ndarray) -> None:
        pos = np.asarray(positions, dtype=np.int64)
        super().__init__(parent.classes, parent.labels[pos],
                         f"{len(pos)} of the images in {parent.where}")
        self.parent, self.positions = parent, pos

    def relpath(self, pos: int) -> str:
        """The parent's source path of the ``pos``-th chosen position."""
        return self.parent.relpath(int(self.positions[pos]))

    def size(self, pos: int) -> int:
        """The parent's source bytes of the ``pos``-th chosen position."""
        return self.parent.size(int(self.positions[pos]))

    def load(self, pos: int, opts: LoadOptions) -> np.ndarray:
        """The parent's image at the ``pos``-th chosen position."""
        return self.parent.load(int(self.positions[pos]), opts)

    def check_unchanged(self, pos: int) -> None:
        """The parent's check of the ``pos``-th chosen position."""
        self.parent.check_unchanged(int(self.positions[pos]))


def item_to_image(image: Any, opts: LoadOptions, where: str) -> np.ndarray:
    """A dataset item's image (PIL image, uint8 array or tensor) as an encoder array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return pil_to_image(image, opts, where)
    if hasattr(image, "detach") and hasattr(image, "numpy"):  # a torch tensor
        arr = image.detach().cpu().numpy()
        if arr.ndim == 3 and arr.shape[0] <= 4 and arr.shape[2] > 4:
            arr = np.moveaxis(arr, 0, -1)
        return array_to_image(arr, opts, where)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[0] <= 4 and arr.shape[2] > 4:
            arr = np.moveaxis(arr, 0, -1)
        return array_to_image(arr, opts, where)
    raise InputImageError(f"{where}: expected a PIL image, a uint8 array or a tensor, got "
                          f"{type(image).__name__}")


def open_source(src: Any, *, labels: Any = None, classes: Sequence[str] | None = None
                ) -> ImageSource:
    """The :class:`ImageSource` for ``convert()``'s first argument (see the module docstring)."""
    if isinstance(src, ImageSource):
        return src
    if isinstance(src, (str, os.PathLike)):
        if labels is not None or classes is not None:
            raise InvalidArgumentError("labels= and classes= are for array and dataset sources; "
                                       "an ImageFolder's classes are its sub-folders")
        return FolderSource(scan_image_folder(Path(src)))
    if isinstance(src, np.ndarray):
        return ArraySource(src, labels, classes)
    if hasattr(src, "__getitem__") and hasattr(src, "__len__"):
        return DatasetSource(src, labels, classes)
    raise InvalidArgumentError(
        f"source must be an ImageFolder path, a uint8 array or a map-style dataset, got "
        f"{type(src).__name__}")


def image_digest(arr: np.ndarray, label: int) -> bytes:
    """SHA-256 of one loaded image (shape, pixels) and its label."""
    h = hashlib.sha256(f"{arr.shape}|{label}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


def content_digest(digests: Sequence[bytes]) -> str:
    """SHA-256 (hex) over the per-image digests in position order."""
    h = hashlib.sha256(b"dcq-content-v1\n")
    for d in digests:
        h.update(d)
    return h.hexdigest()


def _int_label(v: Any, pos: int) -> int:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InputImageError(f"item {pos}: the label must be an integer, got {v!r}")
    return int(v)


def _check_labels(labels: Any, n: int) -> np.ndarray:
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    lab = np.asarray(labels)
    if lab.shape != (n,) or (lab.size and lab.dtype.kind not in "iu"):
        raise InvalidArgumentError(f"labels must be {n} integers (one per image), got "
                                   f"{lab.dtype} {lab.shape}")
    lab = lab.astype(np.int64)
    if lab.size and lab.min() < 0:
        raise InvalidArgumentError(f"labels must be >= 0, got {int(lab.min())}")
    return lab


def _class_names(names: Sequence[str] | None, labels: np.ndarray) -> tuple[str, ...]:
    top = int(labels.max()) + 1 if labels.size else 0
    if names is None:
        return tuple(str(i) for i in range(top))
    out = tuple(str(c) for c in names)
    if len(out) < top:
        raise InvalidArgumentError(f"{len(out)} class names for labels up to {top - 1}")
    return out


def _hf_columns(ds: Any) -> tuple[str | None, str | None, list[str] | None]:
    """``(image column, label column, class names)`` of a Hugging Face dataset, else Nones."""
    features = getattr(ds, "features", None)
    if features is None or not hasattr(ds, "column_names"):
        return None, None, None
    image_key = label_key = None
    names = None
    for key, feat in features.items():
        kind = type(feat).__name__
        if kind == "Image" and image_key is None:
            image_key = key
        elif kind == "ClassLabel" and label_key is None:
            label_key, names = key, list(feat.names)
    cols = list(ds.column_names)
    image_key = image_key or next((c for c in ("image", "img") if c in cols), None)
    label_key = label_key or next((c for c in ("label", "labels", "fine_label") if c in cols), None)
    if image_key is None or label_key is None:
        raise InvalidArgumentError(f"a Hugging Face dataset needs an image and a label column, "
                                   f"found {cols}")
    return image_key, label_key, names


def _dataset_labels(ds: Any, label_key: str | None, n: int) -> Any:
    if label_key is not None:
        return ds[label_key]
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == n:
        return targets
    out = np.empty(n, dtype=np.int64)  # one pass over the items: loads every image once
    for i in range(n):
        item = ds[i]
        out[i] = _int_label(item[1], i)
    return out
