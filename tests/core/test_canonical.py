"""Canonical entries and RFC 9162 leaf hashes: the bytes every verifier recomputes."""

from __future__ import annotations

import hashlib

import pytest

from agenitry import canonical_json, leaf_hash


def test_keys_sorted_no_spaces_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é", "c": [1, {"z": None, "y": True}]}) == (
        '{"a":"é","b":1,"c":[1,{"y":true,"z":null}]}'.encode()
    )


def test_nan_and_infinity_are_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"amount": float("nan")})
    with pytest.raises(ValueError):
        canonical_json({"amount": float("inf")})


def test_leaf_hash_is_rfc9162() -> None:
    # RFC 9162's first test vector: the leaf hash of the empty entry.
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"entry") == hashlib.sha256(b"\x00entry").digest()
