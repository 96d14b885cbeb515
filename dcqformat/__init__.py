"""dcqformat: a compressed dataset file format for image classification.

Public API: :class:`DCQFile` (read), :class:`DCQWriter` (write), :class:`DCQDataset`
(torch, needs the ``torch`` extra), :func:`convert` (the encoder, ``torch`` extra),
and the :mod:`dcqformat.errors` tree.
"""

from __future__ import annotations

from typing import Any

from dcqformat._version import __version__
from dcqformat.errors import DcqError
from dcqformat.format.reader import DCQFile
from dcqformat.format.writer import DCQWriter

__all__ = ["DCQFile", "DCQWriter", "DcqError", "__version__", "DCQDataset", "DCQSampler", "convert"]


def __getattr__(name: str) -> Any:
    # torch-dependent names load on first use, so the reader core never imports torch.
    if name in ("DCQDataset", "DCQSampler"):
        from dcqformat.torch import dataset as _ds
        return getattr(_ds, name)
    if name == "convert":
        from dcqformat.encode.pipeline import convert
        return convert
    raise AttributeError(f"module 'dcqformat' has no attribute {name!r}")
