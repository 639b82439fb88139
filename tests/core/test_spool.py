"""The spool, on by default: events outlive a gateway outage at exit, and nothing is lost.

A process that exits while the gateway is down leaves its events on disk (0600 files in
0700 directories); the next process on the same gateway, venue and key delivers them
once each, in order, with their ids and the time each was logged, even when the one before it was killed -9 halfway
through the replay, and when two processes replay at once. The happy path writes
nothing; a full spool drops events with a warning and a count, never silently.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agenitry import Agenitry, EventsDroppedWarning
from agenitry._config import resolve_spool_dir
from agenitry._delivery import SPOOL_READ
from agenitry.gateway import Database, ManualClock
from agenitry.gateway._clock import HOUR, iso, system_clock
from agenitry.gateway.cli import app
from agenitry.gateway.store.schema import events
from support.live import LiveServer
from support.processes import python_script, run_script
from support.venues import Venue

StoredIds = Callable[..., list[str]]
#: However slow the machine, a flush of a few thousand events is over by then.
BOUND = 60.0

#: Logs argv[5] events (context {"writer": argv[6], "n": n}), prints each one's id and the
#: times (UTC, ms) just before and just after its log() call, exits without close().
LOG_AND_EXIT = """
    import json, sys, time
    from agenitry import Agenitry
    from agenitry.gateway._clock import iso
    base, key, venue, spool, count, writer = sys.argv[1:7]
    client = Agenitry(key, venue, base_url=base, spool_dir=spool, exit_timeout=0.2)
    logged = []
    for n in range(int(count)):
        before = iso(int(time.time() * 1000))
        event_id = client.log("order_captured", context={"writer": writer, "n": n})["id"]
        logged.append((event_id, before, iso(int(time.time() * 1000))))
    print(json.dumps(logged))
"""

#: Opens a client of argv[5]'s flavour on the spool, flushes, and prints what it saw and did.
REPLAY = """
    import asyncio, json, sys
    from agenitry import Agenitry, AsyncAgenitry
    base, key, venue, spool, flavour = sys.argv[1:6]

    def report(client, ok):
        stats = client.delivery_stats()
        return {"ok": ok, "delivered": stats.delivered, "dropped": stats.dropped}

    if flavour == "async":
        async def replay():
            async with AsyncAgenitry(key, venue, base_url=base, spool_dir=spool) as client:
                pending = client.pending_events
                return pending, report(client, await client.flush(60))
        pending, done = asyncio.run(replay())
    else:
        with Agenitry(key, venue, base_url=base, spool_dir=spool) as client:
            pending = client.pending_events
            print(json.dumps({"pending": pending}), flush=True)
            done = report(client, client.flush(60))
    print(json.dumps({"pending": pending, **done}), flush=True)
"""


class Logged(NamedTuple):
    """An event a process logged, and the times just before and after its log() call."""

    id: str
    before: str
    after: str


def logged_and_exited(base: str, venue: Venue, spool: Path, count: int, writer: str = "w") -> list[Logged]:
    done = run_script(LOG_AND_EXIT, base, venue.admin_key, venue.id, str(spool), str(count), writer)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # kept, not dropped
    return [Logged(*event) for event in json.loads(done.stdout)]


def log_and_exit(base: str, venue: Venue, spool: Path, count: int, writer: str = "w") -> list[str]:
    return [event.id for event in logged_and_exited(base, venue, spool, count, writer)]


def replay(base: str, venue: Venue, spool: Path, flavour: str = "sync") -> dict[str, Any]:
    done = run_script(REPLAY, base, venue.admin_key, venue.id, str(spool), flavour)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def stored_events(database: Database, venue_id: str) -> list[Any]:
    """A venue's order_captured events in sequence order: id, occurred_at, created_at (ms)."""
    e = events.c
    query = select(e.id, e.occurred_at, e.created_at).where(e.venue_id == venue_id, e.action == "order_captured")
    with database.read() as conn:
        return list(conn.execute(query.order_by(e.sequence)))


def segments(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.jsonl"))


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting, after {seconds} s, for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_process_that_exits_in_an_outage_leaves_its_events_to_the_next_one(
    venue: Venue,
    free_port: int,
    gateway_on_port: Callable[[int], Any],
    database: Database,
    clock: ManualClock,
    tmp_path: Path,
    flavour: str,
) -> None:
    base, spool = f"http://127.0.0.1:{free_port}", tmp_path / "spool"
    logged = logged_and_exited(base, venue, spool, 5_000)
    files = segments(spool)
    assert files and sum(len(path.read_bytes().splitlines()) for path in files) == 5_000
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}
    assert {stat.S_IMODE(path.stat().st_mode) for path in (spool, files[0].parent)} == {0o700}

    with Agenitry(venue.admin_key, venue.id, base_url=base, spool_dir=spool) as still_down:
        assert still_down.pending_events == 5_000
        still_down.close(timeout=0)  # releases the files untouched: the gateway is still down
    assert sum(len(path.read_bytes().splitlines()) for path in segments(spool)) == 5_000

    # The gateway comes back hours later; its clock stamps the replay, the events keep their own time.
    replayed_at = clock.advance(3 * HOUR)
    replay_began = iso(system_clock())
    gateway_on_port(free_port)
    assert replay(base, venue, spool, flavour) == {"pending": 5_000, "ok": True, "delivered": 5_000, "dropped": 0}
    stored = stored_events(database, venue.id)
    assert [event.id for event in stored] == [event.id for event in logged]
    for event, sent in zip(stored, logged):
        assert sent.before <= iso(event.occurred_at) <= sent.after < replay_began, "the time of its log() call"
    assert {event.created_at for event in stored} == {replayed_at}
    assert segments(spool) == []


def test_a_replay_killed_halfway_is_finished_by_the_next_process_each_event_stored_once(
    venue: Venue,
    free_port: int,
    gateway_on_port: Callable[[int], Any],
    faults: Callable[..., Any],
    stored_ids: StoredIds,
    tmp_path: Path,
) -> None:
    proxy = faults(f"http://127.0.0.1:{free_port}", stall=120)
    spool = tmp_path / "spool"
    ids = log_and_exit(proxy.url, venue, spool, 5_000)
    gateway_on_port(free_port)
    # Eight batches are answered; the ninth is stored but its answer never comes. By then the
    # replaying process has read the whole file: only a file kept until delivered survives the kill.
    proxy.arm("stall", skip=8)
    second = subprocess.Popen(
        python_script(REPLAY, proxy.url, venue.admin_key, venue.id, str(spool), "sync"), stdout=subprocess.PIPE
    )
    try:
        assert second.stdout is not None
        assert json.loads(second.stdout.readline()) == {"pending": 5_000}
        wait_until(lambda: len(stored_ids(venue.id, "order_captured")) >= 4_500, "nine batches stored")
    finally:
        os.kill(second.pid, signal.SIGKILL)
        second.wait(timeout=30)
        second.stdout.close()  # type: ignore[union-attr]
    assert len(segments(spool)) >= 1, "the file being replayed is still there"

    third = replay(proxy.url, venue, spool)
    assert third["ok"] and third["dropped"] == 0
    assert third["pending"] == third["delivered"] == 5_000, "the stored part is sent again, and stored once"
    assert stored_ids(venue.id, "order_captured") == ids
    assert segments(spool) == []


def test_two_processes_replaying_one_spool_at_once_deliver_each_event_once(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    base, spool = f"http://127.0.0.1:{free_port}", tmp_path / "spool"
    writers = {writer: log_and_exit(base, venue, spool, 2_000, writer) for writer in ("a", "b", "c")}
    assert len(segments(spool)) == 3
    gateway_on_port(free_port)
    command = python_script(REPLAY, base, venue.admin_key, venue.id, str(spool), "sync")
    replayers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(replayer.communicate(timeout=120)[0].splitlines()[-1]) for replayer in replayers]
    assert all(result["ok"] and result["dropped"] == 0 for result in results)
    assert sum(result["delivered"] for result in results) == 6_000, "no event was sent twice"
    stored = stored_ids(venue.id, "order_captured")
    assert sorted(stored) == sorted(id_ for ids in writers.values() for id_ in ids)
    for ids in writers.values():
        assert [id_ for id_ in stored if id_ in set(ids)] == ids, "each writer's order holds"
    assert segments(spool) == []


def test_a_flush_without_a_timeout_ends_when_a_spool_file_read_to_its_last_line_is_sent(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    # A file of exactly one read: the worker learns it is finished by a read that finds
    # nothing more, after its events were sent; the flush waiting for it must hear that.
    base, spool = f"http://127.0.0.1:{free_port}", tmp_path / "spool"
    ids = log_and_exit(base, venue, spool, SPOOL_READ)
    gateway_on_port(free_port)
    flushed: list[bool] = []
    with Agenitry(venue.admin_key, venue.id, base_url=base, spool_dir=spool) as client:
        flusher = threading.Thread(target=lambda: flushed.append(client.flush()), daemon=True)
        flusher.start()
        flusher.join(BOUND)
        assert flushed == [True], "flush() never returned though everything was sent"
    assert stored_ids(venue.id, "order_captured") == ids


def test_a_full_spool_drops_with_a_warning_and_a_count_never_silently(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    base, spool = f"http://127.0.0.1:{free_port}", tmp_path / "spool"
    options: dict[str, Any] = {"base_url": base, "spool_dir": spool, "max_queue": 10, "spool_max_bytes": 20_000}
    client = Agenitry(venue.admin_key, venue.id, **options)
    with pytest.warns(EventsDroppedWarning, match="the spool is full .spool_max_bytes=20000") as warned:
        ids = [client.log("order_captured", context={"n": n})["id"] for n in range(1_000)]
        client.close(timeout=0.1)
    assert "still undelivered when the client closed" in str(warned[-1].message)
    dropped = client.dropped_events
    assert 0 < dropped < 1_000
    assert sum(path.stat().st_size for path in segments(spool)) <= 20_000

    gateway_on_port(free_port)
    with Agenitry(venue.admin_key, venue.id, **options) as next_client:
        assert next_client.flush(30)
    stored = stored_ids(venue.id, "order_captured")
    assert len(stored) + dropped == 1_000, "every event is stored or counted as dropped"
    assert stored == [id_ for id_ in ids if id_ in set(stored)]


def test_the_happy_path_writes_nothing_to_disk(live: LiveServer, venue: Venue, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with Agenitry(venue.admin_key, venue.id, base_url=live.url, spool_dir=spool) as client:
        for n in range(2_000):
            client.log("order_captured", context={"n": n})
        assert client.flush(30)
    log_and_exit(live.url, venue, spool, 300)  # the exit hook delivers: nothing to keep
    assert not spool.exists()


def test_an_embedded_client_replays_what_the_last_one_left_in_its_database(
    database: Database, venue: Venue, stored_ids: StoredIds, tmp_path: Path
) -> None:
    script = """
        import json, sys
        from agenitry import Agenitry
        url, venue, spool = sys.argv[1:4]
        client = Agenitry.embedded(url, venue_id=venue, spool_dir=spool, exit_timeout=0)
        print(json.dumps([client.log("order_captured", context={"n": n})["id"] for n in range(300)]))
    """
    spool = tmp_path / "spool"
    runs = [run_script(script, database.url, venue.id, str(spool)) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    with Agenitry.embedded(database.url, venue_id=venue.id, spool_dir=spool) as last:
        assert last.flush(30)
    assert stored_ids(venue.id, "order_captured") == json.loads(runs[0].stdout) + json.loads(runs[1].stdout)
    assert segments(spool) == []


def test_spool_status_and_flush_on_the_command_line(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    base, spool = f"http://127.0.0.1:{free_port}", tmp_path / "spool"
    ids = log_and_exit(base, venue, spool, 300)
    runner = CliRunner()
    status = runner.invoke(app, ["spool", "status", "--json", "--spool-dir", str(spool)])
    [scope] = json.loads(status.stdout)
    assert (scope["gateway"], scope["venue_id"], scope["events"], scope["held"]) == (base, venue.id, 300, 0)

    flush = [*("spool", "flush", "--venue", venue.id, "--api-key", venue.admin_key), "--spool-dir", str(spool)]
    down = runner.invoke(app, [*flush, "--base-url", base, "--timeout", "0.2"])
    assert down.exit_code == 1 and "300 event(s) still wait" in down.stdout
    gateway_on_port(free_port)
    up = runner.invoke(app, [*flush, "--base-url", base])
    assert up.exit_code == 0 and "Delivered 300 event(s)" in up.stdout
    assert stored_ids(venue.id, "order_captured") == ids
    assert "Nothing waits" in runner.invoke(app, ["spool", "status", "--spool-dir", str(spool)]).stdout


def test_where_the_spool_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENITRY_SPOOL_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert resolve_spool_dir(None) == str(tmp_path / ".local/state/agenitry/spool")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert resolve_spool_dir(None) == str(tmp_path / "state/agenitry/spool")
    monkeypatch.setenv("AGENITRY_SPOOL_DIR", str(tmp_path / "mine"))
    assert resolve_spool_dir(None) == str(tmp_path / "mine")
    assert resolve_spool_dir(tmp_path / "given") == str(tmp_path / "given")
    assert resolve_spool_dir(False) is None
    monkeypatch.setenv("AGENITRY_SPOOL_DIR", "off")
    assert resolve_spool_dir(None) is None
