"""Zero overspend under concurrency: a decision and its hold are one atomic step.

Many threads of one process, and several ``agenitry serve`` processes sharing one SQLite
file or one PostgreSQL database, race authorizations at daily limits (an agent's and the
venue's). Afterwards:

- every request was answered: approved, or denied with ``max_daily_spend`` (never a 5xx);
- what the approved authorizations hold stays within every limit;
- replaying the venue's audit log in sequence order (the order the decisions committed
  in) reproduces every decision: each approval fitted the remaining budget and each
  denial did not, so the limit is also *tight* (nothing was refused that fitted);
- each authorization holds what its status says, and the spend buckets agree with the
  authorizations table.

These tests use the system clock, as a deployed gateway does: every decision reads the
time after it takes the venue's lock, so decisions get instants that never go back in
commit order and land in real minute buckets, while a 24-hour window and a 300-second execute
window cannot roll over during a race of a few seconds. A manual clock would put every
decision at one instant, which is the easier case for the ledger.

Numbers (requests, approved, denied, seconds) are reported as junit properties and
printed under ``-s``; nothing here asserts a duration.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import pytest
from sqlalchemy import func, select

from agenitry.gateway import Database, Gateway, GatewayError, Principal
from agenitry.gateway._clock import DAY
from agenitry.gateway.service import ledger
from agenitry.gateway.store.schema import authorizations, events, spend_buckets
from support.processes import start_gateways
from support.venues import Venue, make_venue

STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
#: Requests are 7.00 to 60.00 dollars, in cents.
LOWEST, HIGHEST = 700, 6_000
#: Holds of each status: executed and settled hold the actual amount, open ones the amount.
HOLDING = {"approved": "amount", "pending": "amount", "executed": "actual_amount", "settled": "actual_amount"}
SERVERS = 3

Report = Callable[[str, object], None]


# -- what the stored state must say after a race -----------------------------------------


@dataclass
class Replay:
    """The venue's decisions re-run from its audit log, in commit order."""

    held: dict[str, int]
    holds: dict[str, int] = field(default_factory=dict)
    approved: int = 0
    denied: int = 0


def replay_log(database: Database, venue_id: str, limits: dict[str, int]) -> Replay:
    """Re-run every authorization event of the venue against ``limits`` (scope → minor units).

    The event sequence is taken under the venue's lock in the decision's own transaction,
    so it is the order in which the decisions were made.
    """
    with database.read() as conn:
        rows = conn.execute(
            select(events)
            .where(events.c.venue_id == venue_id, events.c.action.like("authorization.%"))
            .order_by(events.c.sequence)
        ).all()
    state = Replay(held=dict.fromkeys(limits, 0))
    for row in rows:
        scopes = [scope for scope in (ledger.VENUE_SCOPE, row.agent_id) if scope in limits]
        hold = state.holds.get(row.authorization_id, 0)
        if row.action == "authorization.approved":
            over = {
                scope: state.held[scope] + row.amount
                for scope in scopes
                if state.held[scope] + row.amount > limits[scope]
            }
            assert not over, f"event {row.sequence}: approved {row.amount} past a limit {over} of {limits}"
            new_hold = row.amount
            state.approved += 1
        elif row.action == "authorization.denied":
            assert row.context["denial_code"] == "max_daily_spend", row
            assert any(state.held[scope] + row.amount > limits[scope] for scope in scopes), (
                f"event {row.sequence}: denied {row.amount} although it fitted ({state.held} of {limits})"
            )
            new_hold = 0
            state.denied += 1
        elif row.action == "authorization.executed":
            new_hold = row.amount
        elif row.action == "authorization.settled":
            new_hold = hold
        else:
            assert row.action == "authorization.reversed", row
            new_hold = 0
        for scope in scopes:
            state.held[scope] += new_hold - hold
        state.holds[row.authorization_id] = new_hold
    return state


def check_holds(database: Database, venue_id: str, limits: dict[str, int], replayed: Replay) -> None:
    """The authorizations table, the spend buckets and the replayed log say the same, within the limits."""
    now = int(time.time() * 1000)
    with database.read() as conn:
        rows = conn.execute(select(authorizations).where(authorizations.c.venue_id == venue_id)).all()
        windows = {scope: ledger.held_since(conn, venue_id, scope, now - DAY) for scope in limits}
        buckets = dict(
            conn.execute(
                select(spend_buckets.c.scope, func.sum(spend_buckets.c.amount))
                .where(spend_buckets.c.venue_id == venue_id, spend_buckets.c.width == DAY)
                .group_by(spend_buckets.c.scope)
            ).all()
        )
    totals = dict.fromkeys(limits, 0)
    for row in rows:
        expected = getattr(row, HOLDING[row.status]) if row.status in HOLDING else 0
        assert row.hold == expected, f"{row.id} is {row.status} and holds {row.hold}, not {expected}"
        assert replayed.holds.get(row.id, 0) == row.hold, f"the log and the table disagree on {row.id}"
        assert row.created_at >= now - DAY
        for scope in (ledger.VENUE_SCOPE, row.agent_id):
            if scope in totals:
                totals[scope] += row.hold
    for scope, limit in limits.items():
        assert totals[scope] <= limit, f"scope {scope!r} holds {totals[scope]} past its limit {limit}"
        assert windows[scope] == totals[scope] == replayed.held[scope]
        assert int(buckets.get(scope, 0)) == totals[scope]


@pytest.fixture
def report(record_property: Callable[[str, object], None], request: pytest.FixtureRequest) -> Report:
    """Keep a figure of the race: a junit property, and a line under ``-s``."""

    def keep(name: str, value: object) -> None:
        record_property(name, value)
        print(f"{request.node.name}: {name}={value}")

    return keep


# -- many threads of one process -------------------------------------------------------


def race_in_process(gateway: Gateway, agents: Sequence[Principal], threads: int, each: int) -> list[Any]:
    """``threads`` threads send ``each`` authorizations, thread i for ``agents[i % len]``;
    returns the answers (or the GatewayError raised)."""
    start = threading.Barrier(threads)

    def run(index: int) -> list[Any]:
        rng = random.Random(index)
        agent = agents[index % len(agents)]
        start.wait()
        answers: list[Any] = []
        for _ in range(each):
            amount = rng.randint(LOWEST, HIGHEST)
            try:
                body = gateway.authorize(agent, {"action": "comp_issued", "amount": amount / 100}).body
                answers.append((amount, body))
            except GatewayError as exc:
                answers.append((amount, exc))
        return answers

    with ThreadPoolExecutor(threads) as pool:
        return [answer for answers in pool.map(run, range(threads)) for answer in answers]


def check_answers(answers: Sequence[Any], report: Report, elapsed: float) -> int:
    """Every answer is an approval or a daily-limit denial; returns how many were approved."""
    failures = [answer for answer in answers if not isinstance(answer[1], dict)]
    assert not failures, f"{len(failures)} requests failed, e.g. {failures[0][1]!r}"
    kinds = {(body["status"], body.get("denial_code")) for _, body in answers}
    assert kinds <= {("approved", None), ("denied", "max_daily_spend")}, kinds
    approved = sum(body["approved"] for _, body in answers)
    report("requests", len(answers))
    report("approved", approved)
    report("denied", len(answers) - approved)
    report("seconds", round(elapsed, 2))
    return approved


def test_threads_racing_one_agent_never_overspend_its_daily_limit(database: Database, report: Report) -> None:
    gateway = Gateway(database)
    venue = make_venue(gateway)
    venue.policy(agent_id="voice-agent", max_daily_spend=1000)
    limits = {"voice-agent": 100_000}

    started = time.monotonic()
    answers = race_in_process(gateway, [venue.agent("voice-agent")], threads=16, each=25)
    approved = check_answers(answers, report, time.monotonic() - started)

    total = sum(amount for amount, body in answers if body["approved"])
    assert total <= 100_000
    # 400 requests of 7-60 dollars ask for far more than 1,000: the budget runs out, and
    # once it has, what is left is less than the largest request.
    assert 0 < approved < len(answers)
    assert 100_000 - total < HIGHEST
    replayed = replay_log(database, venue.id, limits)
    assert (replayed.approved, replayed.denied) == (approved, len(answers) - approved)
    assert replayed.held["voice-agent"] == total
    check_holds(database, venue.id, limits, replayed)


def test_threads_racing_several_agents_never_overspend_the_venue_limit(database: Database, report: Report) -> None:
    gateway = Gateway(database)
    venue = make_venue(gateway)
    # Four agents may spend 400 each, the venue 1,000 in all: the venue's limit must bind.
    venue.policy(max_daily_spend=1000)
    names = [f"agent-{n}" for n in range(4)]
    for name in names:
        venue.policy(agent_id=name, max_daily_spend=400)
    limits = {"": 100_000, **dict.fromkeys(names, 40_000)}

    started = time.monotonic()
    answers = race_in_process(gateway, [venue.agent(name) for name in names], threads=16, each=25)
    approved = check_answers(answers, report, time.monotonic() - started)

    replayed = replay_log(database, venue.id, limits)
    assert (replayed.approved, replayed.denied) == (approved, len(answers) - approved)
    assert replayed.held[""] == sum(amount for amount, body in answers if body["approved"])
    assert 100_000 - HIGHEST < replayed.held[""] <= 100_000
    check_holds(database, venue.id, limits, replayed)


# -- several gateway processes on one database ------------------------------------------


@dataclass
class Cluster:
    """``agenitry serve`` processes on one database, and an in-process gateway on it."""

    database: Database
    gateway: Gateway
    urls: list[str]


@pytest.fixture(scope="module", params=STORES)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three gateway processes on one database: a fresh SQLite file (WAL lets processes
    share it), or the session's fresh PostgreSQL database."""
    logs = tmp_path_factory.mktemp(f"cluster-{request.param}")
    if request.param == "sqlite":
        url = "sqlite:///" + str(logs / "shared.db")
    else:
        url = str(request.getfixturevalue("postgresql_url"))
    database = Database(url, pool_size=20)
    # Migrate once before the servers start, so that their own migrations find nothing to do.
    database.migrate()
    servers = start_gateways(url, logs, SERVERS)
    try:
        yield Cluster(database, Gateway(database), [server.url for server in servers])
    finally:
        for server in servers:
            server.stop()
        database.dispose()


@dataclass
class HttpRace:
    """What the threads of an HTTP race saw."""

    decisions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    follow_ups: int = 0


def race_over_http(cluster: Cluster, venue: Venue, agents: Sequence[str], threads: int, each: int) -> HttpRace:
    """Threads spread over the instances authorize; some approvals are then executed for
    less, settled or reversed through another instance, freeing budget mid-race."""
    race = HttpRace()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run(index: int) -> None:
        rng = random.Random(1_000 + index)
        agent = agents[index % len(agents)]
        headers = {"Authorization": f"Bearer {venue.agent_key(agent)}"}
        own = cluster.urls[index % len(cluster.urls)]
        other = cluster.urls[(index + 1) % len(cluster.urls)]
        admin = {"Authorization": f"Bearer {venue.admin_key}"}
        with (
            httpx.Client(base_url=own, headers=headers, timeout=30) as near,
            httpx.Client(base_url=other, headers=headers, timeout=30) as far,
            httpx.Client(base_url=other, headers=admin, timeout=30) as owner,
        ):

            def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
                answer = client.post(path, json=body)
                if answer.status_code != 200:
                    with lock:
                        race.failures.append(f"POST {path} -> {answer.status_code} {answer.text}")
                    return None
                result: dict[str, Any] = answer.json()
                return result

            start.wait()
            for _ in range(each):
                amount = rng.randint(LOWEST, HIGHEST)
                decision = post(
                    near, "/v1/authorize", {"agent_id": agent, "action": "comp_issued", "amount": amount / 100}
                )
                if decision is None:
                    continue
                with lock:
                    race.decisions.append((amount, decision))
                if not decision["approved"]:
                    continue
                path = f"/v1/authorize/{decision['authorization_id']}"
                plan = rng.choice(["keep", "keep", "less", "less", "settle", "reverse", "less-then-reverse"])
                if plan in ("less", "settle", "less-then-reverse"):
                    actual = rng.randint(0, amount) if plan != "settle" else amount
                    post(far, f"{path}/execute", {"actual_amount": actual / 100})
                if plan == "settle":
                    post(near, f"{path}/settle", {})
                if plan == "reverse":  # the agent releases an approval it will not use
                    post(far, f"{path}/reverse", {})
                if plan == "less-then-reverse":  # only the owner refunds what was spent
                    post(owner, f"{path}/reverse", {})
                with lock:
                    race.follow_ups += plan != "keep"

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return race


def test_gateway_processes_racing_never_overspend(cluster: Cluster, report: Report) -> None:
    venue = make_venue(cluster.gateway)
    # Three agents may spend 300 each, the venue 600 in all.
    venue.policy(max_daily_spend=600)
    names = [f"agent-{n}" for n in range(3)]
    for name in names:
        venue.policy(agent_id=name, max_daily_spend=300)
    limits = {"": 60_000, **dict.fromkeys(names, 30_000)}

    started = time.monotonic()
    race = race_over_http(cluster, venue, names, threads=12, each=20)
    elapsed = time.monotonic() - started

    assert not race.failures, f"{len(race.failures)} requests failed, e.g. {race.failures[0]}"
    assert len(race.decisions) == 12 * 20
    kinds = {(body["status"], body.get("denial_code")) for _, body in race.decisions}
    assert kinds == {("approved", None), ("denied", "max_daily_spend")}
    approved = sum(body["approved"] for _, body in race.decisions)
    report("instances", len(cluster.urls))
    report("requests", len(race.decisions))
    report("approved", approved)
    report("denied", len(race.decisions) - approved)
    report("executes_settles_reverses", race.follow_ups)
    report("seconds", round(elapsed, 2))

    replayed = replay_log(cluster.database, venue.id, limits)
    assert (replayed.approved, replayed.denied) == (approved, len(race.decisions) - approved)
    check_holds(cluster.database, venue.id, limits, replayed)
    # Every request left exactly one authorization, whichever instance it reached.
    listed = cluster.gateway.list_authorizations(venue.admin, limit=200)
    assert listed["total"] == len(race.decisions)
