"""What the verifiable log costs: appends with the Merkle tree against without it, and
proofs from a tree of 10^6 entries.

- Append: ``Gateway.log_event`` in-process, one event a transaction, and ``log_events`` in
  batches of 100, with the tree appended in the same transaction beside the same call with
  the tree append switched off (the ratio is the log's price). Blocks of the two alternate,
  so drift in the machine hits both alike. Checkpoint signing is off in both (it is one
  signature per 1,000 entries by default; its own cost is shown apart).
- Proofs: a venue's tree of 10^6 leaves in storage (built through the gateway's own
  ``log.append_leaves``, 10^4 leaves a transaction), then root, inclusion and consistency
  proofs read from it at random sizes and indices; their size in hashes and bytes, the
  .tlog-proof's size, and the time to verify each offline with the core package.

Run ``.venv/bin/python bench/bench_log.py`` (``--quick`` for a short run, ``--no-postgres``
without a PostgreSQL server, ``--leaves N`` for another tree size).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from _common import machine, stores
from agenitry import leaf_hash
from agenitry._ed25519 import verify_pure
from agenitry._merkle import verify_consistency, verify_inclusion
from agenitry._tlog import Checkpoint, NoteSignature, TlogProof, TrustedKey, format_note, key_id, open_checkpoint
from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway.service import log
from agenitry.gateway.service.signing import SigningKey

EVENT = {"agent_id": "voice-agent", "action": "order_captured", "amount": 12.5}


@contextmanager
def databases(postgres: bool) -> Iterator[list[tuple[str, Database]]]:
    with stores(postgres) as (_, urls):
        found = [({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[name], Database(url)) for name, url in urls]
        for _, database in found:
            database.migrate()
        try:
            yield found
        finally:
            for _, database in found:
                database.dispose()


@contextmanager
def tree_off() -> Iterator[None]:
    # An append asks the log for the nodes its events complete: none, with the tree off.
    original = log.new_nodes
    log.new_nodes = lambda *args, **kwargs: []  # type: ignore[assignment]
    try:
        yield
    finally:
        log.new_nodes = original  # type: ignore[assignment]


def per_call(work: Callable[[], Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def bench_appends(name: str, database: Database, n: int) -> None:
    gateway = Gateway(database, checkpoint_every=0, checkpoint_interval=0)
    with_tree, without = [], []
    batch_with, batch_without = [], []
    rounds = 10
    for round_ in range(rounds):
        # A fresh venue a round, so both sides append to logs of the same sizes.
        for side, sink, batches in ((True, with_tree, batch_with), (False, without, batch_without)):
            venue_id = f"bench-{round_}-{'tree' if side else 'bare'}"
            gateway.create_venue(venue_id)
            operator = Principal.operator(venue_id)
            if side:
                sink += per_call(lambda op=operator: gateway.log_event(op, EVENT), n // rounds)
                batches += per_call(lambda op=operator: gateway.log_events(op, [EVENT] * 100), 3)
            else:
                with tree_off():
                    sink += per_call(lambda op=operator: gateway.log_event(op, EVENT), n // rounds)
                    batches += per_call(lambda op=operator: gateway.log_events(op, [EVENT] * 100), 3)
    one, bare = statistics.median(with_tree), statistics.median(without)
    hundred, hundred_bare = statistics.median(batch_with) / 100, statistics.median(batch_without) / 100
    print(f"  {name}, one event a transaction ({len(with_tree)} each, median):")
    print(f"    with the tree    {one * 1e6:8.0f} µs/event")
    print(f"    without it       {bare * 1e6:8.0f} µs/event      ratio {one / bare:.2f}x")
    print(f"  {name}, batches of 100 events (median per event):")
    print(f"    with the tree    {hundred * 1e6:8.0f} µs/event")
    print(f"    without it       {hundred_bare * 1e6:8.0f} µs/event      ratio {hundred / hundred_bare:.2f}x")
    venue_id = "bench-sign"
    gateway.create_venue(venue_id)
    gateway.log_events(Principal.operator(venue_id), [EVENT] * 999)
    signing = per_call(lambda: gateway.log_events(Principal.operator(venue_id), [EVENT]), 1)[0]
    print(f"    a 1,000th event, which also signs a checkpoint: {signing * 1e6:.0f} µs (once per 1,000 by default)")


def build_tree(database: Database, venue_id: str, leaves: int) -> float:
    start = time.perf_counter()
    chunk = 10_000
    for first in range(0, leaves, chunk):
        batch = [leaf_hash(i.to_bytes(8, "big")) for i in range(first, min(leaves, first + chunk))]
        with database.write() as conn:
            log.append_leaves(conn, venue_id, first, batch)
    return time.perf_counter() - start


def timed(work: Callable[[], Any], n: int) -> tuple[float, Any]:
    start = time.perf_counter()
    result = None
    for _ in range(n):
        result = work()
    return (time.perf_counter() - start) / n, result


def bench_proofs(name: str, database: Database, leaves: int, samples: int) -> None:
    venue_id = "bench-tree"
    built = build_tree(database, venue_id, leaves)
    print(f"  {name}: {leaves:,} leaves stored in {built:.1f} s ({leaves / built:,.0f} leaves/s, 10^4 a transaction)")
    rng = random.Random(7)
    key = SigningKey.generate()
    with database.read() as conn:
        sizes = [rng.randrange(1, leaves + 1) for _ in range(samples)]
        root_time, _ = timed(lambda: log.root(conn, venue_id, rng.choice(sizes)), samples)
        root = log.root(conn, venue_id, leaves)
        indices = [rng.randrange(leaves) for _ in range(samples)]
        start = time.perf_counter()
        proofs = [(i, log.inclusion_proof(conn, venue_id, i, leaves)) for i in indices]
        inclusion_time = (time.perf_counter() - start) / samples
        pairs = sorted((rng.randrange(1, leaves), leaves) for _ in range(samples))
        start = time.perf_counter()
        consistency = [(a, b, log.consistency_proof(conn, venue_id, a, b, size=leaves)) for a, b in pairs]
        consistency_time = (time.perf_counter() - start) / samples
        first_roots = {a: log.root(conn, venue_id, a) for a, _, _ in consistency[:50]}
    lengths = [len(proof) for _, proof in proofs]
    verify_time, _ = timed(
        lambda: all(verify_inclusion(leaf_hash(i.to_bytes(8, "big")), i, leaves, p, root) for i, p in proofs[:200]),
        1,
    )
    consistency_ok = all(verify_consistency(a, b, first_roots[a], root, proof) for a, b, proof in consistency[:50])
    origin = f"bench.example/agenitry/{venue_id}"
    body = Checkpoint(origin, leaves, root).body()
    note = format_note(body, [NoteSignature(origin, key_id(origin, key.public_key), key.sign(body.encode()))])
    index, hashes = proofs[0]
    tlog = TlogProof(index, tuple(hashes), note).text()
    trusted = [TrustedKey(key.public_key)]
    signature_time, _ = timed(lambda: open_checkpoint(note, trusted), 200)
    signature = key.sign(body.encode())
    pure_time, _ = timed(lambda: verify_pure(key.public_key, body.encode(), signature), 20)
    print(f"    root of a random size, from storage          {root_time * 1e6:8.0f} µs")
    print(
        f"    inclusion proof, from storage                {inclusion_time * 1e6:8.0f} µs   "
        f"{min(lengths)}-{max(lengths)} hashes ({max(lengths) * 32} bytes)"
    )
    print(
        f"    consistency proof, from storage              {consistency_time * 1e6:8.0f} µs   "
        f"{max(len(p) for _, _, p in consistency)} hashes at most"
    )
    print(f"    .tlog-proof of one entry (no extra line)     {len(tlog.encode()):8d} bytes")
    print(f"    verify one inclusion proof (core)            {verify_time / 200 * 1e6:8.1f} µs")
    print(f"    consistency proofs verified                  {'all' if consistency_ok else 'NOT ALL'} of 50")
    print(f"    check a checkpoint's signature (cryptography) {signature_time * 1e6:7.0f} µs")
    print(f"    check it in plain Python (no cryptography)   {pure_time * 1e6:8.0f} µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and a tree of 10^5")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--leaves", type=int, default=None, help="the tree's size [10^6, or 10^5 with --quick]")
    args = parser.parse_args()
    n = 200 if args.quick else 1_000
    leaves = args.leaves or (100_000 if args.quick else 1_000_000)
    print(f"Agenitry verifiable log, {'quick' if args.quick else 'full'} run: {machine()}")
    with databases(not args.no_postgres) as found:
        print("\nAppend cost per event, with the Merkle tree against without it")
        for name, database in found:
            bench_appends(name, database, n)
        print(f"\nProofs from a tree of {leaves:,} entries")
        for name, database in found:
            bench_proofs(name, database, leaves, 200 if args.quick else 1_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
