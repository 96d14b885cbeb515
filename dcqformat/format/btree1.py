"""A pre-check of HDF5 version 1 B-trees, done before HDF5 walks any of them.

Old-style groups (symbol tables) and the chunk indexes of files written with
``libver="earliest"`` are version 1 B-trees (signature ``TREE``). HDF5 iterates one by
descending into every child and, at each level, following the nodes' right-sibling addresses;
it does not check that a child is one level lower nor that a sibling chain ends. Found by
editing one address of a fuzzing base: a right sibling pointing at its own node loops forever
inside ``H5Lvisit``, and a child pointing at its own node recurses until the process dies of a
stack overflow (SIGSEGV) -- neither can be caught from Python.

So before any group is traversed, every ``TREE`` node outside the payload is checked: its
right-sibling chain must end without revisiting a node, and the children of a node of level
L > 0 must be ``TREE`` nodes of level L - 1 (which makes descent finite). A group node's keys
are 8 bytes; a chunk node's keys hold the chunk's size, filter mask and rank + 1 offsets, and
the rank (not stored in the node) is the one, 1 to 32, for which the children are such nodes.
Anything else wrong with a node HDF5 refuses itself; a ``TREE`` that occurs by chance is never
read by HDF5, so only a loop or a child of the wrong level is refused, and only the nodes
HDF5 would actually follow are ever looked at from a real node.

Node layout (HDF5 file format spec, "Version 1 B-trees"; 8-byte addresses): ``"TREE"``, node
type (0 group, 1 chunk), level (1), entries used (2), left sibling (8), right sibling (8), then
key 0, child 0, key 1, child 1, ..., key n.
"""

from __future__ import annotations

import mmap
import struct

from dcqformat.errors import StructureError
from dcqformat.format.h5attrs import UNDEFINED, signature_positions

__all__ = ["check_v1_btrees", "check_v1_node"]

_SIGNATURE = b"TREE"
_HEADER = 24
_MAX_RANK = 32

Buffer = bytes | mmap.mmap


def _node(buf: Buffer, pos: int, file_size: int) -> tuple[int, int, int, int] | None:
    """(type, level, entries used, right sibling) of a node at ``pos``, or None if none is."""
    if pos == UNDEFINED or pos + _HEADER > file_size or buf[pos:pos + 4] != _SIGNATURE:
        return None
    kind, level, used = buf[pos + 4], buf[pos + 5], struct.unpack_from("<H", buf, pos + 6)[0]
    if kind not in (0, 1):
        return None
    return kind, level, used, struct.unpack_from("<Q", buf, pos + 16)[0]


def _children(buf: Buffer, pos: int, file_size: int, key: int, used: int) -> list[int] | None:
    """The child addresses of a node whose keys are ``key`` bytes; None if they overrun."""
    end = pos + _HEADER + (used + 1) * key + used * 8
    if end > file_size:
        return None
    return [struct.unpack_from("<Q", buf, pos + _HEADER + key + i * (key + 8))[0] for i in range(used)]


def _children_are_one_level_down(buf: Buffer, pos: int, file_size: int, kind: int, level: int,
                                 used: int) -> bool:
    keys = [8] if kind == 0 else [16 + 8 * rank for rank in range(1, _MAX_RANK + 1)]
    for key in keys:
        children = _children(buf, pos, file_size, key, used)
        if children is None:
            continue
        nodes = [_node(buf, c, file_size) for c in children]
        if all(n is not None and n[0] == kind and n[1] == level - 1 for n in nodes):
            return True
    return False


def check_v1_node(buf: Buffer, pos: int, file_size: int, where: str,
                  ended: set[int] | None = None) -> None:
    """Check the B-tree node at ``pos`` (see the module docstring); StructureError naming it.
    ``ended``: nodes whose sibling chains are known to end (filled in; a scan shares it, so
    that a long chain is walked once)."""
    node = _node(buf, pos, file_size)
    if node is None:
        return
    kind, level, used, right = node
    known = set() if ended is None else ended
    seen = {pos}
    while right not in known and (nxt := _node(buf, right, file_size)) is not None:
        if right in seen:
            raise StructureError(f"{where}: the right-sibling chain of the HDF5 B-tree node at "
                                 f"byte {pos} loops (node at byte {right} again); HDF5 would "
                                 "never finish walking it")
        seen.add(right)
        right = nxt[3]
    known.update(seen)
    if level > 0 and used > 0 and not _children_are_one_level_down(buf, pos, file_size, kind,
                                                                   level, used):
        raise StructureError(f"{where}: the HDF5 B-tree node at byte {pos} has level {level} but "
                             f"its children are not B-tree nodes of level {level - 1}; HDF5 "
                             "could descend into it without end")


def check_v1_btrees(buf: Buffer, file_size: int, where: str,
                    skip: tuple[int, int] | None = None) -> int:
    """Check every version 1 B-tree node outside ``skip`` (the payload); how many were found."""
    found = 0
    ended: set[int] = set()
    for pos in signature_positions(buf, _SIGNATURE, file_size, skip):
        check_v1_node(buf, pos, file_size, where, ended)
        found += 1
    return found
