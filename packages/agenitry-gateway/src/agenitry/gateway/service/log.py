"""Each venue's Merkle tree in storage: appends, roots and proofs in O(log n) reads.

The table ``log_nodes`` holds every perfect subtree (level, index) of a venue's tree (see
:mod:`agenitry.transparency`). Appending a batch reads the stored subtrees its leaves complete
parents with (one on average for a single leaf, none at an even index), once per batch,
and writes each leaf and each parent it completes; a root or a proof of any size is
folded from O(log n) stored subtrees. Nothing is recomputed from the leaves, and a stored
node never changes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

from sqlalchemy import Connection, select

from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql
from agenitry.gateway.store.schema import log_nodes
from agenitry.transparency import Node, consistency_ranges, fold, inclusion_ranges, node_hash, subtrees

_READ_CHUNK = 10_000
_INSERT_NODES = log_nodes.insert()


def append_leaves(conn: Connection, venue_id: str, first: int, leaves: Sequence[bytes]) -> None:
    """Add ``leaves`` at indices first, first+1, ...; the caller holds the venue's lock."""
    rows = new_nodes(conn, venue_id, first, leaves)
    if rows:
        conn.execute(_INSERT_NODES, rows)


def new_nodes(
    conn: Connection,
    venue_id: str,
    first: int,
    leaves: Sequence[bytes],
    siblings: Optional[Mapping[Node, bytes]] = None,
) -> list[dict[str, Any]]:
    """The rows of ``log_nodes`` that adding ``leaves`` at indices first, first+1, ... writes.

    A leaf completes the parent of every node it ends as a right child. Only the left
    siblings stored before ``first`` are read, not the whole frontier of the tree that a
    :class:`agenitry.transparency.CompactTree` starts from: the nodes written are the same.
    ``siblings``, if given, are those already read (:func:`stored_siblings`).
    """
    if not leaves:
        return []
    wanted = stored_siblings(first, len(leaves))
    if siblings is not None and all(node in siblings for node in wanted):
        known = {node: siblings[node] for node in wanted}
    else:
        known = nodes(conn, venue_id, wanted)
    rows = []
    for index, digest in enumerate(leaves, start=first):
        level = 0
        known[level, index] = digest
        rows.append({"venue_id": venue_id, "level": level, "node_index": index, "hash": digest})
        while index % 2:
            digest = node_hash(known[level, index - 1], digest)
            level, index = level + 1, index // 2
            known[level, index] = digest
            rows.append({"venue_id": venue_id, "level": level, "node_index": index, "hash": digest})
    return rows


def stored_siblings(first: int, count: int) -> list[Node]:
    """The stored nodes (those ending at or before ``first``) that appending ``count``
    leaves at ``first`` merges with: the left siblings met going up from each new leaf."""
    wanted = []
    for index in range(first, first + count):
        level = 0
        while index % 2:
            if index << level <= first:
                wanted.append((level, index - 1))
            level, index = level + 1, index // 2
    return wanted


def nodes(conn: Connection, venue_id: str, wanted: Iterable[Node]) -> dict[Node, bytes]:
    """The stored hashes of the given subtrees (a missing one is a broken store: KeyError later)."""
    read = nodes_read(conn, venue_id, wanted)
    return nodes_found(driver.run(conn, *read)) if read is not None else {}


def nodes_read(conn: Connection, venue_id: str, wanted: Iterable[Node]) -> Optional[tuple[Sql, dict[str, Any]]]:
    """The statement of :func:`nodes`, to send with others (None when nothing is wanted);
    its cursor goes to :func:`nodes_found`."""
    wanted = sorted(set(wanted))
    if not wanted:
        return None
    if conn.dialect.name == "postgresql":
        levels, indices = [level for level, _ in wanted], [index for _, index in wanted]
        return _UNNEST, {"venue": venue_id, "levels": levels, "indices": indices}
    params: dict[str, Any] = {"venue": venue_id}
    for k, (level, index) in enumerate(wanted):
        params[f"l{k}"], params[f"i{k}"] = level, index
    return _lookup(len(wanted)), params


def nodes_found(cursor: Any) -> dict[Node, bytes]:
    return {(level, index): bytes(digest) for level, index, digest in cursor}


# One primary-key lookup a node, as plain SQL on the driver (every append runs it): SQLite
# scans all of a venue's nodes for a row-value IN, and building an expression of 40 terms
# costs more than the query itself. On PostgreSQL, OFFSET 0 keeps the lookup a subquery
# run once per wanted node: as a join, the planner hashed every node of the venue (a scan
# that grows with its log).
_UNNEST = Sql(
    "SELECT wanted.level, wanted.node_index, n.hash FROM unnest(CAST(:levels AS smallint[]),"
    " CAST(:indices AS bigint[])) AS wanted(level, node_index) CROSS JOIN LATERAL (SELECT hash FROM log_nodes"
    " WHERE venue_id = :venue AND level = wanted.level AND node_index = wanted.node_index OFFSET 0) AS n",
    prepared=True,
)


@functools.lru_cache(maxsize=256)
def _lookup(count: int) -> Sql:
    terms = " OR ".join(f"(venue_id = :venue AND level = :l{k} AND node_index = :i{k})" for k in range(count))
    return Sql(f"SELECT level, node_index, hash FROM log_nodes WHERE {terms}")  # noqa: S608 - no value in it


def _hashes_of(conn: Connection, venue_id: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    parts = [subtrees(start, end) for start, end in ranges]
    stored = nodes(conn, venue_id, (node for part in parts for node in part))
    missing = [node for part in parts for node in part if node not in stored]
    if missing:
        raise LookupError(f"venue {venue_id}: the log's tree lacks nodes {missing[:3]}")
    return [fold([stored[node] for node in part]) for part in parts]


def root(conn: Connection, venue_id: str, size: int) -> bytes:
    """The tree hash of the first ``size`` leaves."""
    [digest] = _hashes_of(conn, venue_id, [(0, size)])
    return digest


def inclusion_proof(conn: Connection, venue_id: str, index: int, size: int) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return _hashes_of(conn, venue_id, inclusion_ranges(index, size))


def consistency_proof(conn: Connection, venue_id: str, first: int, second: int, *, size: int) -> list[bytes]:
    """The RFC 9162 proof that the tree of ``first`` leaves is a prefix of that of ``second``.

    ``size`` is the venue's current tree size; a proof reaches no further.
    """
    if not 0 <= first <= second <= size:
        raise Unprocessable(
            f"A consistency proof needs 0 <= first <= second <= {size} (the log's size)", code="invalid_tree_size"
        )
    return _hashes_of(conn, venue_id, consistency_ranges(first, second))


def leaves(conn: Connection, venue_id: str) -> list[Optional[bytes]]:
    """Every stored leaf by index (None where one is missing), for a full audit."""
    found: list[Optional[bytes]] = []
    for index, digest in _level(conn, venue_id, 0):
        found.extend([None] * (index - len(found)))
        found.append(digest)
    return found


def _level(conn: Connection, venue_id: str, level: int) -> Iterator[tuple[int, bytes]]:
    n = log_nodes.c
    after = -1
    while True:
        chunk = conn.execute(
            select(n.node_index, n.hash)
            .where(n.venue_id == venue_id, n.level == level, n.node_index > after)
            .order_by(n.node_index)
            .limit(_READ_CHUNK)
        ).all()
        for index, digest in chunk:
            yield int(index), bytes(digest)
        if len(chunk) < _READ_CHUNK:
            return
        after = int(chunk[-1][0])


def first_wrong_node(conn: Connection, venue_id: str, leaves: Sequence[bytes]) -> Optional[Node]:
    """The first stored interior node that is not the hash of its children, computed up
    from ``leaves``, or that should not exist; None when all are right (proofs served
    from them then hold). Holds two levels in memory at a time."""
    below = list(leaves)
    level = 1
    while below:
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        stored = dict(_level(conn, venue_id, level))
        for index in sorted(set(stored) | set(range(len(above)))):
            if index >= len(above) or stored.get(index) != above[index]:
                return level, index
        below = above if len(above) > 1 else []
        level += 1
    return None
