"""The log's Merkle maths is RFC 9162's: the standard's test vectors, and every inclusion and
consistency proof of trees up to 64 leaves against a tree built the slow way, straight from
the RFC's recursive definitions. Proofs that are wrong in any way are refused.
"""

from __future__ import annotations

import hashlib

import pytest

from agenitry import leaf_hash
from agenitry._merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_ranges,
    fold,
    inclusion_ranges,
    node_hash,
    root_of,
    subtrees,
    verify_consistency,
    verify_inclusion,
)

#: RFC 9162 / RFC 6962 test leaves and the roots of their first 1..8 (reference/verifiable-log.md).
VECTOR_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
VECTOR_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
MAX = 64
LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(MAX)]


# -- the slow tree, written from RFC 9162 §2.1 and nothing else ------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


# -- the fast side: hashes from ranges of stored subtrees, as the gateway assembles them ---


class Stored:
    """Every perfect subtree of LEAVES, as the gateway's log_nodes table holds them."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        tree = CompactTree()
        for leaf in leaves:
            for level, index, digest in tree.append(leaf):
                self.nodes[(level, index)] = digest

    def hash(self, start: int, end: int) -> bytes:
        return fold([self.nodes[node] for node in subtrees(start, end)])

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return [self.hash(start, end) for start, end in inclusion_ranges(index, size)]

    def consistency(self, first: int, second: int) -> list[bytes]:
        return [self.hash(start, end) for start, end in consistency_ranges(first, second)]


STORED = Stored(LEAVES)


def flipped(digest: bytes) -> bytes:
    return bytes([digest[0] ^ 1]) + digest[1:]


def test_the_rfc_9162_roots_of_one_to_eight_leaves() -> None:
    leaves = [leaf_hash(bytes.fromhex(data)) for data in VECTOR_LEAVES]
    for size, expected in enumerate(VECTOR_ROOTS, 1):
        assert root_of(leaves[:size]).hex() == expected
        assert mth(leaves[:size]).hex() == expected
    assert (
        root_of([]) == EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


def test_the_rfc_9162_example_proofs_verify() -> None:
    leaves = [leaf_hash(bytes.fromhex(data)) for data in VECTOR_LEAVES]
    roots = [bytes.fromhex(root) for root in VECTOR_ROOTS]
    # Consistency from 6 to 8 leaves: the known two-hash proof of the reference implementations.
    proof = [
        bytes.fromhex("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        bytes.fromhex("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]
    assert subproof(6, leaves, True) == proof
    assert verify_consistency(6, 8, roots[5], roots[7], proof)
    assert not verify_consistency(6, 8, roots[4], roots[7], proof)
    for index in range(8):
        assert verify_inclusion(leaves[index], index, 8, path(index, leaves), roots[7])


def test_stored_subtrees_give_every_root_of_the_slow_tree() -> None:
    tree = CompactTree()
    for size in range(1, MAX + 1):
        tree.append(LEAVES[size - 1])
        expected = mth(LEAVES[:size])
        assert STORED.hash(0, size) == expected == tree.root()
        assert CompactTree(size, [STORED.nodes[node] for node in subtrees(0, size)]).root() == expected


def test_every_inclusion_proof_up_to_64_leaves() -> None:
    for size in range(1, MAX + 1):
        root = mth(LEAVES[:size])
        for index in range(size):
            proof = STORED.inclusion(index, size)
            assert proof == path(index, LEAVES[:size]), (index, size)
            assert verify_inclusion(LEAVES[index], index, size, proof, root)
            assert not verify_inclusion(LEAVES[index], index, size, proof, flipped(root))
            assert not verify_inclusion(flipped(LEAVES[index]), index, size, proof, root)
            if proof:
                assert not verify_inclusion(LEAVES[index], index, size, [*proof[:-1], flipped(proof[-1])], root)
                assert not verify_inclusion(LEAVES[index], index, size, proof[:-1], root)
            assert not verify_inclusion(LEAVES[index], index, size, [*proof, root], root)
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(LEAVES[index], other, size, proof, root)


def test_every_consistency_proof_up_to_64_leaves() -> None:
    roots = [mth(LEAVES[:size]) for size in range(MAX + 1)]
    for second in range(1, MAX + 1):
        for first in range(1, second + 1):
            proof = STORED.consistency(first, second)
            assert proof == (subproof(first, LEAVES[:second], True) if first < second else []), (first, second)
            assert verify_consistency(first, second, roots[first], roots[second], proof)
            assert not verify_consistency(first, second, flipped(roots[first]), roots[second], proof)
            assert not verify_consistency(first, second, roots[first], flipped(roots[second]), proof)
            if proof:
                assert not verify_consistency(first, second, roots[first], roots[second], proof[:-1])
                assert not verify_consistency(
                    first, second, roots[first], roots[second], [flipped(proof[0]), *proof[1:]]
                )
            if first > 1:
                assert not verify_consistency(first - 1, second, roots[first], roots[second], proof)


def test_sizes_zero_and_equal_take_an_empty_proof() -> None:
    root = mth(LEAVES[:5])
    assert consistency_ranges(0, 5) == [] and consistency_ranges(5, 5) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, flipped(root), [])
    assert not verify_consistency(5, 4, root, root, [])
    assert not verify_inclusion(LEAVES[5], 5, 5, [], root)


def test_an_append_stores_the_leaf_and_each_parent_it_completes() -> None:
    tree = CompactTree()
    made = [tree.append(leaf) for leaf in LEAVES[:8]]
    assert [[(level, index) for level, index, _ in nodes] for nodes in made] == [
        [(0, 0)],
        [(0, 1), (1, 0)],
        [(0, 2)],
        [(0, 3), (1, 1), (2, 0)],
        [(0, 4)],
        [(0, 5), (1, 2)],
        [(0, 6)],
        [(0, 7), (1, 3), (2, 1), (3, 0)],
    ]
    assert made[1][1][2] == node_hash(LEAVES[0], LEAVES[1])
    with pytest.raises(ValueError, match="perfect subtrees"):
        CompactTree(7, [EMPTY_ROOT])
    with pytest.raises(ValueError):
        inclusion_ranges(3, 3)
