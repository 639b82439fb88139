"""``kill -9`` in the middle of a group-committed batch: none of its writes happened.

A gateway process queues three decisions of one venue behind a write that holds the
venue's transaction, then a fourth write that stops for good once the three before it in
the batch have run (their rows written, not yet committed). The process is killed there.
None of the three was answered, and none is in the database: the batch commits whole or
not at all. The ledger's invariants hold, and the next process decides at once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import func, select

from agenitry.gateway import Database, Gateway
from agenitry.gateway.store.schema import authorizations
from support.invariants import check_ledger
from support.processes import python_script
from support.venues import make_venue

#: However slow the machine, the child reaches the middle of its batch by then.
BOUND = 60.0

CHILD = """
    import sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from agenitry.gateway import Database, Gateway
    url, venue_id, agent_key, marker = sys.argv[1:5]
    gateway = Gateway(Database(url))
    agent = gateway.authenticate(agent_key)
    inside, release = threading.Event(), threading.Event()

    def hold(tx):
        inside.set()
        release.wait()

    def stop_in_the_batch(tx):
        with open(marker, "w") as note:
            note.write(f"{len(tx.appended)} events written in this batch")
        time.sleep(600)

    def queued(count):
        while gateway.commits.queued(venue_id) < count:
            time.sleep(0.01)

    pool = ThreadPoolExecutor(8)
    pool.submit(gateway.commits.run, venue_id, hold)
    inside.wait()
    for count in range(1, 4):
        pool.submit(gateway.authorize, agent, {"action": "order_captured", "amount": 5})
        queued(count)
    pool.submit(gateway.commits.run, venue_id, stop_in_the_batch)
    queued(4)
    release.set()
    time.sleep(600)
"""


def test_a_batch_killed_before_its_commit_leaves_none_of_its_writes(
    store: str, database: Database, tmp_path: Path
) -> None:
    gateway = Gateway(database)
    venue = make_venue(gateway)
    venue.policy(max_single_amount=100)
    marker = tmp_path / "in-the-batch"
    child = subprocess.Popen(python_script(CHILD, database.url, venue.id, venue.agent_key(), str(marker)))
    try:
        deadline = time.monotonic() + BOUND
        while not marker.exists() or not marker.read_text():
            assert child.poll() is None, "the child ended before reaching its batch"
            assert time.monotonic() < deadline, "the child never reached the middle of its batch"
            time.sleep(0.05)
        assert marker.read_text() == "3 events written in this batch"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(BOUND)

    with database.read() as conn:
        count = conn.execute(
            select(func.count()).select_from(authorizations).where(authorizations.c.venue_id == venue.id)
        ).scalar_one()
    assert count == 0, "a write of the killed batch was committed"
    check_ledger(database, venue.id)
    # The venue's lock died with the process: the next decision is made at once.
    assert gateway.authorize(venue.agent(), {"action": "order_captured", "amount": 5}).body["status"] == "approved"
    check_ledger(database, venue.id)
