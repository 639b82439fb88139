"""log() in the background: through outages, lost answers, full queues, forks and exits.

Events logged while the gateway is down are all stored, once each and in order, when it
comes back. A batch whose answer was lost is sent again and stored once. A full queue
spills to the spool (kept in order, replayed by the next client on that directory, even
in another process) or, with the spool off, drops events that are counted and warned about
once per burst. One event the gateway refuses is dropped alone, not its batch. A forked
child starts with an empty queue and a worker of its own; the exit hook delivers what is
queued, and spools what it could not deliver. tests/core/test_spool.py has the spool's own
tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from agenitry import Agenitry, AsyncAgenitry, EventsDroppedWarning
from support.live import LiveServer
from support.processes import run_script
from support.venues import Venue

StoredIds = Callable[..., list[str]]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_ten_thousand_events_logged_during_an_outage_are_all_stored_once_in_order(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, flavour: str
) -> None:
    options = {"base_url": f"http://127.0.0.1:{free_port}", "retry_base_delay": 0.05}
    if flavour == "sync":
        with Agenitry(venue.admin_key, venue.id, **options) as client:
            answers = [client.log("order_captured", amount=1.25, context={"n": n}) for n in range(10_000)]
            assert client.flush(0.2) is False
            assert client.delivery_stats().delivered == 0
            gateway_on_port(free_port)
            assert client.flush(60) is True
            stats = client.delivery_stats()
    else:

        async def outage() -> tuple[list[dict[str, Any]], Any]:
            async with AsyncAgenitry(venue.admin_key, venue.id, **options) as client:
                answers = [await client.log("order_captured", amount=1.25, context={"n": n}) for n in range(10_000)]
                assert await client.flush(0.2) is False
                gateway_on_port(free_port)
                assert await client.flush(60) is True
                return answers, client.delivery_stats()

        answers, stats = asyncio.run(outage())
    assert {answer["status"] for answer in answers} == {"queued"}
    assert (stats.delivered, stats.dropped, stats.queued, stats.in_flight) == (10_000, 0, 0, 0)
    assert stored_ids(venue.id, "order_captured") == [answer["id"] for answer in answers]


def test_a_batch_whose_answer_was_lost_is_stored_once(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], stored_ids: StoredIds
) -> None:
    proxy = faults(live.url, "drop_after", times=2)
    with Agenitry(venue.admin_key, venue.id, base_url=proxy.url, retry_base_delay=0.01) as client:
        ids = [client.log("order_captured", context={"n": n})["id"] for n in range(1_200)]
        assert client.flush(30)
        assert client.delivery_stats().delivered == 1_200
    assert stored_ids(venue.id, "order_captured") == ids
    batches = proxy.requests_to("/v1/events/batch")
    keys = [headers["idempotency-key"] for _, _, headers in batches]
    assert len(keys) == len(set(keys)) + 2, "each lost batch was sent again with its own key"


def test_a_full_queue_without_spool_drops_counts_and_warns_once_per_burst(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds
) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    client = Agenitry(venue.admin_key, venue.id, base_url=base_url, max_queue=1, spool_dir=False)
    with pytest.warns(EventsDroppedWarning, match="queue is full .* and the spool is off") as burst:
        answers = [client.log("order_captured", context={"n": n}) for n in range(1_000)]
    assert len(burst) == 1
    kept = [answer["id"] for answer in answers if answer["status"] == "queued"]
    # One event in the queue, perhaps one more the worker holds while the gateway is down.
    assert 1 <= len(kept) <= 2
    assert client.dropped_events == 1_000 - len(kept) == client.delivery_stats().dropped
    server = gateway_on_port(free_port)
    assert client.flush(30)
    assert stored_ids(venue.id, "order_captured") == kept
    server.stop()
    with pytest.warns(EventsDroppedWarning) as second_burst:
        for n in range(1_000):
            client.log("order_captured", context={"again": n})
    assert len(second_burst) == 1
    with pytest.warns(EventsDroppedWarning, match="still undelivered when the client closed"):
        client.close(timeout=0.1)
    assert client.dropped_events == 2_000 - len(kept)


def test_the_spool_keeps_order_and_the_next_client_replays_it(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    options = {
        "base_url": f"http://127.0.0.1:{free_port}",
        "max_queue": 10,
        "spool_dir": str(tmp_path / "spool"),
    }
    first = Agenitry(venue.admin_key, venue.id, **options)
    ids = [first.log("order_captured", context={"n": n})["id"] for n in range(300)]
    stats = first.delivery_stats()
    assert stats.spooled > 250 and stats.dropped == 0
    first.close(timeout=0.2)
    assert first.dropped_events == 0
    assert sum(len(path.read_bytes().splitlines()) for path in (tmp_path / "spool").rglob("*.jsonl")) == 300
    gateway_on_port(free_port)
    with Agenitry(venue.admin_key, venue.id, **options) as second:
        ids.append(second.log("order_captured", context={"n": "after restart"})["id"])
        assert second.flush(30)
    assert stored_ids(venue.id, "order_captured") == ids
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []


def test_an_event_the_gateway_refuses_is_dropped_alone(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], stored_ids: StoredIds
) -> None:
    proxy = faults(live.url)
    with Agenitry(venue.admin_key, venue.id, base_url=proxy.url) as client:
        client.log("order_captured", context={"n": 0})  # wakes the worker before the batch below queues up
        assert client.flush(30)
        # Valid to the client (it does not know the venue's currency), refused by the gateway:
        # a tenth of a cent.
        with pytest.warns(EventsDroppedWarning, match="the gateway refused them") as warned:
            answers = [
                client.log("order_captured", amount=0.001 if n == 37 else None, context={"n": n}) for n in range(64)
            ]
            # True or False depending on whether the refusal came before or during the flush.
            client.flush(30)
        assert len(warned) == 1 and client.delivery_stats().queued == 0
        assert client.dropped_events == 1
    wanted = [answer["id"] for n, answer in enumerate(answers) if n != 37]
    assert stored_ids(venue.id, "order_captured")[1:] == wanted


def test_close_never_hangs_on_a_dead_gateway_and_spools_what_it_holds(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds
) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    client = Agenitry(venue.admin_key, venue.id, base_url=base_url, timeout=0.5)
    ids = [client.log("order_captured", context={"n": n})["id"] for n in range(20)]
    assert client.flush(0.1) is False
    assert client.pending_events == 20
    client.close(timeout=0.2)  # no warning: warnings are errors here
    assert client.dropped_events == 0
    gateway_on_port(free_port)
    with Agenitry(venue.admin_key, venue.id, base_url=base_url) as next_client:
        assert next_client.flush(30)
    assert stored_ids(venue.id, "order_captured") == ids


def test_close_with_the_spool_off_reports_what_it_lost(venue: Venue, free_port: int) -> None:
    base_url = f"http://127.0.0.1:{free_port}"
    client = Agenitry(venue.admin_key, venue.id, base_url=base_url, timeout=0.5, spool_dir=False)
    for n in range(20):
        client.log("order_captured", context={"n": n})
    assert client.flush(0.1) is False
    with pytest.warns(EventsDroppedWarning, match="still undelivered when the client closed .the spool is off"):
        client.close(timeout=0.2)
    assert client.dropped_events == 20


FORK = """
    import json, os, sys
    from agenitry import Agenitry
    base, key, venue = sys.argv[1:4]
    client = Agenitry(key, venue, base_url=base)
    before = [client.log("order_captured", context={"who": "parent"})["id"] for _ in range(200)]
    pid = os.fork()
    if pid == 0:
        start = client.delivery_stats()
        ids = [client.log("order_captured", context={"who": "child"})["id"] for _ in range(5)]
        ok = client.flush(30)
        client.close()
        print(json.dumps({"start": [start.queued, start.in_flight, start.delivered], "ids": ids, "ok": ok}), flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    after = client.log("order_captured", context={"who": "parent"})["id"]
    ok = client.flush(30)
    client.close()
    print(json.dumps({"ids": before + [after], "ok": ok, "child": status, "dropped": client.dropped_events}))
"""


def test_a_forked_child_starts_empty_with_its_own_worker(live: LiveServer, venue: Venue, stored_ids: StoredIds) -> None:
    done = run_script(FORK, live.url, venue.admin_key, venue.id)
    assert done.returncode == 0, done.stderr
    child, parent = (json.loads(line) for line in done.stdout.splitlines())
    assert child["start"] == [0, 0, 0] and child["ok"] is True
    assert parent["ok"] is True and parent["child"] == 0 and parent["dropped"] == 0
    stored = stored_ids(venue.id, "order_captured")
    assert sorted(stored) == sorted(parent["ids"] + child["ids"])
    assert [i for i in stored if i in parent["ids"]] == parent["ids"]


EXIT_WITHOUT_CLOSE = """
    import json, sys
    from agenitry import Agenitry
    base, key, venue = sys.argv[1:4]
    options = json.loads(sys.argv[4])
    client = Agenitry(key, venue, base_url=base, **options)
    print(json.dumps([client.log("order_captured", context={"n": n})["id"] for n in range(300)]))
"""


def test_the_exit_hook_delivers_what_is_queued(live: LiveServer, venue: Venue, stored_ids: StoredIds) -> None:
    done = run_script(EXIT_WITHOUT_CLOSE, live.url, venue.admin_key, venue.id, "{}")
    assert done.returncode == 0, done.stderr
    assert stored_ids(venue.id, "order_captured") == json.loads(done.stdout)


def test_at_exit_a_dead_gateway_means_a_warning_or_the_spool_for_the_next_run(
    venue: Venue, free_port: int, gateway_on_port: Callable[[int], Any], stored_ids: StoredIds, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port}"
    spool_off = {"exit_timeout": 0.3, "spool_dir": False}
    lost = run_script(EXIT_WITHOUT_CLOSE, base, venue.admin_key, venue.id, json.dumps(spool_off))
    assert lost.returncode == 0, lost.stderr
    assert "EventsDroppedWarning: agenitry dropped events because they were still undelivered" in lost.stderr
    spooled_options = {"exit_timeout": 0.3, "spool_dir": str(tmp_path)}
    kept = run_script(EXIT_WITHOUT_CLOSE, base, venue.admin_key, venue.id, json.dumps(spooled_options))
    assert kept.returncode == 0, kept.stderr
    assert "EventsDroppedWarning" not in kept.stderr
    gateway_on_port(free_port)
    with Agenitry(venue.admin_key, venue.id, base_url=base, spool_dir=str(tmp_path)) as next_run:
        assert next_run.flush(30)
    assert stored_ids(venue.id, "order_captured") == json.loads(kept.stdout)
