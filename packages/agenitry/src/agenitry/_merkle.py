"""Merkle-tree maths of the audit log, as RFC 9162 §2.1 defines it (standard library only).

A venue's log is a tree over its events' leaf hashes. Every hash here is 32 bytes:

    leaf  = SHA-256(0x00 || entry)          (see ``agenitry.leaf_hash``)
    node  = SHA-256(0x01 || left || right)
    root of n leaves: split at k, the largest power of two below n; node(root(D[0:k]), root(D[k:n]))

A tree of any size is made of *perfect subtrees*: node (level L, index i) covers leaves
[i·2^L, (i+1)·2^L) and never changes once its last leaf exists. The gateway stores those
nodes, so every root and proof below is assembled from O(log n) of them: the functions
that name ranges (:func:`inclusion_ranges`, :func:`consistency_ranges`) and the ones that
split a range into stored nodes (:func:`subtrees`) never need the leaves themselves.

The verification functions follow RFC 9162 §2.1.3.2 and §2.1.4.2 line by line, so that a
reader can check them against the standard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

#: The root of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32

#: A stored perfect subtree: (level, index).
Node = tuple[int, int]
#: A half-open range of leaf indices [start, end).
Range = tuple[int, int]


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n > 1).

    >>> split_point(5), split_point(8)
    (4, 4)
    """
    if n < 2:
        raise ValueError("a tree of fewer than two leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


def subtrees(start: int, end: int) -> list[Node]:
    """The perfect subtrees that make up the leaves [start, end), left to right.

    ``start`` must be a multiple of a power of two at least ``end - start``, which holds
    for every range of a proof and for any prefix [0, n).

    >>> subtrees(0, 7)
    [(2, 0), (1, 2), (0, 6)]
    """
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start % (1 << level):
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over consecutive perfect subtrees (as :func:`subtrees` lists them).

    Each subtree is at least as large as everything to its right, so the tree hash is
    node(s1, node(s2, ... node(s_k-1, s_k))).
    """
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def range_hash(start: int, end: int, node: Callable[[int, int], bytes]) -> bytes:
    """The tree hash of leaves [start, end) from the stored subtrees ``node(level, index)``."""
    return fold([node(level, index) for level, index in subtrees(start, end)])


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose tree hashes form the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves, from the leaf's sibling up to the root's child (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose tree hashes prove that the tree of ``first`` leaves is a prefix of
    the tree of ``second`` (RFC 9162 §2.1.4.1). Empty when first is 0 or equals second."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first == 0 or first == second:
        return []
    ranges: list[Range] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            return
        k = split_point(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            ranges.append((start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            ranges.append((start, start + k))

    subproof(first, 0, second, True)
    return ranges


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows ``leaf`` at ``index`` in the tree of ``size`` with ``root``
    (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree (first, first_root) is a prefix of the tree
    (second, second_root) (RFC 9162 §2.1.4.2; sizes 0 and equal sizes take an empty proof)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


class CompactTree:
    """A tree kept as its perfect subtrees only (O(log n) hashes): appends and roots.

    The gateway restores one from the stored subtrees of the current size, appends a
    batch and stores the nodes each append completes; a verifier streams a whole log
    through one to recompute its roots.

    >>> tree = CompactTree()
    >>> [level for level, _, _ in tree.append(bytes(32))], [level for level, _, _ in tree.append(bytes(32))]
    ([0], [0, 1])
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        nodes = subtrees(0, size)
        if len(nodes) != len(hashes):
            raise ValueError(f"a tree of {size} leaves has {len(nodes)} perfect subtrees, not {len(hashes)}")
        self.size = size
        self._stack = [(level, index, digest) for (level, index), digest in zip(nodes, hashes)]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; returns the nodes it completes, (level, index, hash), the leaf first."""
        made = [(0, self.size, leaf)]
        self._stack.append(made[0])
        while len(self._stack) > 1 and self._stack[-1][0] == self._stack[-2][0]:
            level, index, right = self._stack.pop()
            _, _, left = self._stack.pop()
            parent = (level + 1, index >> 1, node_hash(left, right))
            self._stack.append(parent)
            made.append(parent)
        self.size += 1
        return made

    def root(self) -> bytes:
        return fold([digest for _, _, digest in self._stack])


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The tree hash of a list of leaf hashes, in O(n) time and O(log n) space."""
    tree = CompactTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()
