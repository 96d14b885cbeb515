"""The .dcq v1 container: layout constants, writer, reader and validation.

This subpackage imports no torch: reading a .dcq file needs numpy, numba, h5py and
zstandard only. The normative description of the bytes is ``spec/dcq-v1.md``.
"""
