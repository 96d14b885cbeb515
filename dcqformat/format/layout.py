"""Names, dtypes and version rules of the .dcq v1 container (see ``spec/dcq-v1.md``).

Everything the writer produces and the reader checks is spelled here once.
"""

from __future__ import annotations

import numpy as np

MAGIC = "dcq"
VERSION_MAJOR = 1
#: Highest minor version this reader knows (1.1 adds patch masks, spec §13; 1.2 the ctx
#: payload encoding, §14). Files that use neither are still written as 1.0.
VERSION_MINOR = 2

#: Features a reader of this version understands. A file lists the features it needs in
#: the root attribute ``must_understand``; a reader refuses a file naming any other.
KNOWN_FEATURES: frozenset[str] = frozenset({"patch-mask", "ctx-payload"})

#: Values of the root attribute ``payload_encoding`` (spec §6).
STORED_ENCODINGS = ("raw", "zstd", "ctx")
#: What :class:`~dcqformat.DCQWriter` (and the encoder's ``payload_encoding``) accepts: a
#: stored encoding, or ``"auto"`` (the smallest of the three, measured per file).
PAYLOAD_ENCODINGS = (*STORED_ENCODINGS, "auto")

# Root attributes.
ATTR_MAGIC = "dcq_format"
ATTR_VERSION = "dcq_version"
ATTR_MUST_UNDERSTAND = "must_understand"
ATTR_BITS = "bits"
ATTR_CHANNELS = "channels"
ATTR_PALETTE_SIZE = "palette_size"
ATTR_NUM_SAMPLES = "num_samples"
ATTR_NUM_CLUSTERS = "num_clusters"
ATTR_NUM_CLASSES = "num_classes"
ATTR_PAYLOAD_ENCODING = "payload_encoding"
ATTR_CREATED_BY = "created_by"
#: Every dataset carries the CRC-32 (zlib polynomial) of its little-endian bytes.
ATTR_CRC32 = "crc32"

# Datasets.
DS_CLASSES = "classes"
DS_PALETTES = "palettes"
DS_PAYLOAD = "payload"
DS_PROVENANCE = "provenance"
GROUP_SAMPLES = "samples"
GROUP_SOURCES = "sources"
GROUP_SELECTIONS = "selections"
GROUP_MASKS = "masks"  # version 1.1, feature "patch-mask" (see format/masks.py)

#: Per-sample arrays under ``/samples``: name -> little-endian dtype.
SAMPLE_FIELDS: dict[str, np.dtype] = {
    "height": np.dtype("<u4"),
    "width": np.dtype("<u4"),
    "label": np.dtype("<u4"),
    "cluster": np.dtype("<u4"),
    "offset": np.dtype("<u8"),
    "length": np.dtype("<u8"),
    "crc32": np.dtype("<u4"),
}

#: Per-sample arrays under ``/sources`` (optional group).
SOURCE_FIELDS: dict[str, np.dtype] = {
    "size": np.dtype("<i8"),  # bytes of the source file, -1 when unknown
}
SOURCE_PATH = "path"  # variable-length UTF-8 strings

#: Per-sample metadata arrays of at least this many entries are written with HDF5's shuffle
#: and deflate filters (every HDF5 build has both); smaller ones stay contiguous.
METADATA_DEFLATE_MIN = 64

#: Largest accepted side of one image and largest pixel count (guards allocation).
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
#: The reader's default per-sample pixel guard (``DCQFile(max_pixels=...)``): Pillow's
#: ``MAX_IMAGE_PIXELS``, int(1024 * 1024 * 1024 // 4 // 3) -- 268 MB of RGB in one image.
DEFAULT_MAX_PIXELS = 89_478_485
#: Largest values the per-sample ``cluster`` (<u4) and source ``size`` (<i8) fields hold.
MAX_CLUSTER = (1 << 32) - 1
MAX_SOURCE_SIZE = (1 << 63) - 1

#: Upper bound on how many bytes a zstd frame may ask us to allocate beyond the expected size.
ZSTD_DEFAULT_LEVEL = 3


def packed_size(n_pixels: int, bits: int) -> int:
    """Bytes one bit-packed index map of ``n_pixels`` pixels at ``bits`` bits occupies."""
    return (n_pixels * bits + 7) // 8
