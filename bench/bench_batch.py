"""What group commit buys: many threads deciding in one venue, batched or one transaction each.

``Gateway.authorize`` in-process from 1, 8 and 32 threads, all for one agent in one venue
(the case where every decision waits for the venue's lock). Two gateways on the same
database take turns, slice by slice in the same run: one with group commit as shipped (up
to 64 writes per transaction), one with batches of one write (each decision its own
transaction and commit, as before group commit). The figure is the throughput ratio,
batched over alone: above 1 means batching pays. The batches' mean size is printed too.

There is no target in docs/performance.md for this ratio itself: it explains where the
HTTP targets stand. Run ``.venv/bin/python bench/bench_batch.py`` (``--quick`` for fewer
requests, ``--no-postgres`` without a PostgreSQL server).
"""

from __future__ import annotations

import sys

from _common import arguments, deciding, interleaved, machine, stores, venue_with_agent
from agenitry.gateway import Database, Gateway
from agenitry.gateway.service.group_commit import GroupCommit

THREADS = (1, 8, 32)


def main() -> int:
    options = arguments(__doc__.splitlines()[0], "fewer requests")
    n = 400 if options.quick else 2_000
    print(f"Agenitry group commit benchmark: {machine()}{', quick run' if options.quick else ''}")
    print("every thread decides for one agent in one venue; ratio = batched req/s / one-transaction-each req/s\n")
    print(
        f"{'threads':>7}  {'store':<10} {'batched req/s':>13} {'p50 ms':>7} {'mean batch':>10}   "
        f"{'alone req/s':>11} {'p50 ms':>7}   {'ratio':>6}"
    )
    print("-" * 86)
    with stores(not options.no_postgres) as (_, found):
        for name, url in found:
            database = Database(url, pool_size=40)
            database.migrate()
            try:
                batched = Gateway(database)
                alone = Gateway(database)
                alone.transactions.commits = GroupCommit(alone._venue_tx, wait_s=database.busy_timeout_s, max_batch=1)
                alone.commits = alone.transactions.commits
                _, agent, _ = venue_with_agent(batched)
                for threads in THREADS:
                    before = (batched.commits.batches, batched.commits.writes)
                    fast, slow = interleaved(
                        [deciding(batched, agent), deciding(alone, agent)], n, rounds=4, threads=threads
                    )
                    batches = batched.commits.batches - before[0]
                    mean = (batched.commits.writes - before[1]) / batches if batches else 0.0
                    print(
                        f"{threads:>7}  {name:<10} {fast.per_second:>13,.0f} {fast.ms(0.5):>7.2f} {mean:>10.1f}   "
                        f"{slow.per_second:>11,.0f} {slow.ms(0.5):>7.2f}   {fast.per_second / slow.per_second:>5.2f}x"
                    )
            finally:
                database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
