"""``agenitry.integration``: the gated-call flow every adapter uses, against a real gateway.

Each outcome kind, over HTTP on loopback (an agent key) and embedded on a real SQLite file:
ran, denied, pending, already_done, in_progress, failed, invalid, unavailable (and
``approved`` from ``decide``). Exclusion is the gateway's claim: two threads, and two
processes, running the same approved call run its body once. A model's bad amount is
``invalid`` and nothing is authorized; a key the gateway refuses raises.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from agenitry import Agenitry, AsyncAgenitry, AuthenticationError
from agenitry.gateway import Database
from agenitry.integration import GatedCall, GateOutcome, arun_gated, call_key, check_amount, decide, run_gated
from support.live import LiveServer
from support.venues import Venue, make_venue

AGENT = "buyer"
POLICY = {"max_single_amount": 500, "require_approval_above": 100, "max_daily_spend": 1000}
#: What a model may send as an amount that is not one (USD venue).
BAD_AMOUNTS = [True, False, "450", None, math.nan, math.inf, -1, 1e13, 1.005]


@pytest.fixture
def store() -> str:
    """SQLite: the flow's answers are the gateway's, the same on every store (its own suite runs both)."""
    return "sqlite"


@pytest.fixture(params=["http", "embedded"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(mode: str, request: pytest.FixtureRequest, venue: Venue, database: Database) -> Iterator[Agenitry]:
    """An agent's client: over HTTP with its own key, or embedded on the same SQLite file."""
    venue.policy(**POLICY)
    if mode == "http":
        live: LiveServer = request.getfixturevalue("live")
        made = Agenitry(venue.agent_key(AGENT), venue.id, base_url=live.url, max_retries=0)
    else:
        made = Agenitry.embedded(database.url, venue_id=venue.id, agent_id=AGENT)
    with made:
        yield made


class Body:
    """A tool's body: counts its runs; ``fail`` raises instead; ``wait`` blocks until set (or 10 s)."""

    def __init__(self, fail: bool = False, wait: threading.Event | None = None) -> None:
        self.runs = 0
        self.fail = fail
        self.wait = wait

    def __call__(self) -> str:
        self.runs += 1
        if self.wait is not None:
            self.wait.wait(10)
        if self.fail:
            raise RuntimeError("supplier API is down")
        return "ordered"


def order(total: Any, call_id: str | None = "call_1", item: str = "salmon", **options: Any) -> GatedCall:
    """The gated call of an ``order`` tool whose amount is its ``total`` argument."""
    arguments = {"item": item, "total": total}
    key = call_key("thread-1", call_id, "order", arguments)
    return GatedCall("purchase_order", "total", arguments, tool="order", key=key, agent_id=AGENT, **options)


@pytest.fixture
def owner(mode: str, venue: Venue, client: Agenitry) -> Callable[[str, str | None], Any]:
    """The owner deciding through the client's own gateway (the embedded one keeps its own clock)."""

    def decide_as_owner(verb: str, authorization_id: str | None) -> Any:
        assert authorization_id is not None
        if mode == "http":
            return getattr(venue.gateway, verb)(venue.admin, authorization_id)
        return getattr(client, verb)(authorization_id)

    return decide_as_owner


def authorizations(venue: Venue) -> list[dict[str, Any]]:
    return list(venue.gateway.list_authorizations(venue.admin)["authorizations"])


# -- every outcome kind ----------------------------------------------------------------------


def test_approved_call_runs_once_and_is_executed_with_the_actual_amount(client: Agenitry, venue: Venue) -> None:
    body = Body()
    outcome = run_gated(client, order(42.5, actual=lambda result: 40), body)
    assert (outcome.kind, outcome.result, outcome.is_error, body.runs) == ("ran", "ordered", False, 1)
    assert outcome.authorization is not None and outcome.authorization_id in outcome.message
    record = client.get_authorization(outcome.authorization.id)
    assert (record["status"], record["actual_amount"]) == ("executed", 40)


def test_the_same_call_repeated_is_already_done_and_does_not_run_again(client: Agenitry, venue: Venue) -> None:
    body = Body()
    first = run_gated(client, order(42.5), body)
    again = run_gated(client, order(42.5), body)
    assert (first.kind, again.kind, body.runs) == ("ran", "already_done", 1)
    assert again.authorization_id == first.authorization_id
    assert "go ahead" not in again.message and first.authorization_id in again.message
    assert len(authorizations(venue)) == 1


def test_the_same_call_id_with_changed_arguments_is_a_new_decision(client: Agenitry, venue: Venue) -> None:
    body = Body()
    first = run_gated(client, order(42.5), body)
    edited = run_gated(client, order(300), body)
    assert (first.kind, edited.kind, body.runs) == ("ran", "pending", 1)
    assert edited.authorization_id != first.authorization_id
    assert len(authorizations(venue)) == 2


def test_denied_call_never_runs_and_quotes_the_gateways_reason(client: Agenitry) -> None:
    body = Body()
    outcome = run_gated(client, order(600), body)
    assert (outcome.kind, outcome.is_error, body.runs) == ("denied", True, 0)
    assert outcome.authorization is not None and outcome.authorization.denial_code == "max_single_amount"
    assert outcome.authorization.denial_reason and outcome.authorization.denial_reason in outcome.message
    assert "None" not in outcome.message


def test_pending_call_does_not_run_then_continues_once_the_owner_approves(client: Agenitry, owner: Any) -> None:
    body = Body()
    pending = run_gated(client, order(250), body)
    assert (pending.kind, body.runs) == ("pending", 0)
    assert pending.authorization_id is not None and pending.authorization_id in pending.message
    assert decide(client, order(250)).kind == "pending"
    owner("approve", pending.authorization_id)
    assert decide(client, order(250)).kind == "approved"
    resumed = run_gated(client, order(250, authorization_id=pending.authorization_id), body)
    assert (resumed.kind, body.runs) == ("ran", 1)
    assert run_gated(client, order(250), body).kind == "already_done"
    assert body.runs == 1


def test_owner_denial_is_denied_with_the_owners_reason(client: Agenitry, owner: Any) -> None:
    pending = run_gated(client, order(250), Body())
    owner("deny", pending.authorization_id)
    after = run_gated(client, order(250), Body())
    assert (after.kind, after.authorization_id) == ("denied", pending.authorization_id)
    assert "None" not in after.message


def test_expired_authorizations_are_denied_with_a_true_sentence(venue: Venue, live: LiveServer, clock: Any) -> None:
    venue.policy(**POLICY)
    with Agenitry(venue.agent_key(AGENT), venue.id, base_url=live.url, max_retries=0) as client:
        waiting = run_gated(client, order(250, call_id="a"), Body())
        approved = run_gated(client, order(260, call_id="b"), Body())
        venue.gateway.approve(venue.admin, approved.authorization_id)
        clock.advance(86_400_000 + 1)
        for pending in (waiting, approved):
            expired = run_gated(client, order(1, authorization_id=pending.authorization_id), Body())
            assert expired.kind == "denied" and expired.authorization is not None
            assert expired.authorization.status == "expired"
            assert "expired" in expired.message and "None" not in expired.message


def test_failed_body_releases_the_authorization_and_its_hold(client: Agenitry, venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    failed = run_gated(client, order(80), Body(fail=True))
    assert (failed.kind, failed.is_error) == ("failed", True)
    assert isinstance(failed.error, RuntimeError) and "supplier API is down" in failed.message
    assert "released" in failed.message
    assert client.get_authorization(failed.authorization_id)["status"] == "reversed"
    # The hold is back: the whole daily budget can be spent again.
    assert run_gated(client, order(80, call_id="call_2"), Body()).kind == "ran"


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_a_bad_amount_is_invalid_and_nothing_is_authorized(client: Agenitry, venue: Venue, amount: Any) -> None:
    body = Body()
    outcome = run_gated(client, order(amount), body)
    assert (outcome.kind, outcome.is_error, body.runs, outcome.authorization) == ("invalid", True, 0, None)
    assert "amount" in outcome.message or "total" in outcome.message
    assert authorizations(venue) == []


def test_jpy_amounts_have_no_decimal_places(database: Database, venue: Venue) -> None:
    yen = make_venue(venue.gateway, currency="JPY")
    yen.policy(max_single_amount=10_000)
    with Agenitry.embedded(database.url, venue_id=yen.id, agent_id=AGENT) as client:
        stated = run_gated(client, order(1.5, currency="JPY"), Body())
        by_venue = run_gated(client, order(2.5, call_id="call_2"), Body())  # the venue's currency decides
        assert (stated.kind, by_venue.kind) == ("invalid", "invalid")
        assert "JPY amounts have no decimal places" in stated.message
        assert authorizations(yen) == []
        assert run_gated(client, order(1500, call_id="call_3"), Body()).kind == "ran"


def test_the_amount_rule_is_the_gateways(venue: Venue, http: httpx.Client) -> None:
    """What check_amount refuses, the gateway refuses over the wire, and what it takes, the gateway takes."""
    headers = {"Authorization": f"Bearer {venue.agent_key(AGENT)}", "Content-Type": "application/json"}
    for value in [*BAD_AMOUNTS, 0, 12, 12.5, 1e12, 0.0001]:
        try:
            check_amount(value, "USD")
        except ValueError:
            expected = 422
        else:
            expected = 200
        body = json.dumps({"agent_id": AGENT, "action": "purchase_order", "amount": value})
        assert http.post("/v1/authorize", content=body, headers=headers).status_code == expected, value


def test_gateway_out_of_reach_is_unavailable_and_nothing_runs(venue: Venue, free_port: int) -> None:
    body = Body()
    with Agenitry(venue.agent_key(AGENT), venue.id, base_url=f"http://127.0.0.1:{free_port}", max_retries=0) as down:
        outcome = run_gated(down, order(42.5, record=False), body)  # a record could not be delivered
    assert (outcome.kind, outcome.is_error, body.runs) == ("unavailable", True, 0)
    assert "could not be reached" in outcome.message


def test_a_key_the_gateway_refuses_raises(venue: Venue, live: LiveServer) -> None:
    with (
        Agenitry("ag_not_a_key", venue.id, base_url=live.url, max_retries=0) as wrong,
        pytest.raises(AuthenticationError),
    ):
        run_gated(wrong, order(42.5, record=False), Body())


def test_each_call_is_recorded_with_its_outcome_and_authorization(client: Agenitry, venue: Venue) -> None:
    outcome = run_gated(client, order(42.5, extra={"tool_call_id": "call_1"}), Body())
    client.flush()
    [event] = venue.gateway.list_events(venue.admin, venue.id, action="tool_call")["events"]
    context = event["context"]
    assert (context["tool"], context["outcome"], context["authorization_id"]) == (
        "order",
        "ran",
        outcome.authorization_id,
    )
    assert context["tool_call_id"] == "call_1"


# -- at most one run, across threads and processes ------------------------------------------------


def test_two_threads_running_the_same_approved_call_run_its_body_once(client: Agenitry) -> None:
    finished = threading.Event()
    body = Body(wait=finished)
    outcomes: list[GateOutcome] = []

    def run() -> None:
        outcomes.append(run_gated(client, order(42.5), body))
        finished.set()  # lets a body that is waiting finish

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert body.runs == 1
    assert sorted(outcome.kind for outcome in outcomes) in (["in_progress", "ran"], ["already_done", "ran"])


_RESUME = """
import json, pathlib, sys, time
from agenitry import Agenitry
from agenitry.integration import GatedCall, run_gated

url, key, venue, authorization_id, call, folder, name = sys.argv[1:]
folder = pathlib.Path(folder)
(folder / f"ready-{name}").touch()
while len(list(folder.glob("ready-*"))) < 2:
    time.sleep(0.01)

def body():
    with open(folder / "effects", "a") as effects:
        effects.write(name + "\\n")
    deadline = time.monotonic() + 10  # the other process answers first, unless it runs too
    while not list(folder.glob("done-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return name

with Agenitry(key, venue, base_url=url, max_retries=0) as client:
    request = GatedCall("purchase_order", 250, authorization_id=authorization_id, key=call, record=False)
    outcome = run_gated(client, request, body)
(folder / f"done-{name}").touch()
print(json.dumps({"kind": outcome.kind}))
"""


def test_two_processes_resuming_one_approved_call_run_its_body_once(
    venue: Venue, live: LiveServer, tmp_path: Path
) -> None:
    venue.policy(**POLICY)
    key = venue.agent_key(AGENT)
    with Agenitry(key, venue.id, base_url=live.url) as client:
        pending = run_gated(client, order(250), Body())
    assert pending.kind == "pending" and pending.authorization_id is not None
    venue.gateway.approve(venue.admin, pending.authorization_id)
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    arguments = [live.url, key, venue.id, pending.authorization_id, order(250).key or "", str(tmp_path)]
    processes = [
        subprocess.Popen([sys.executable, str(script), *arguments, name], stdout=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    kinds = sorted(json.loads(process.communicate(timeout=60)[0])["kind"] for process in processes)
    assert (tmp_path / "effects").read_text().count("\n") == 1
    assert kinds in (["in_progress", "ran"], ["already_done", "ran"])
    assert venue.gateway.get_authorization(venue.admin, pending.authorization_id)["status"] == "executed"


# -- async -----------------------------------------------------------------------------------


def test_async_drivers_gate_with_either_client(venue: Venue, live: LiveServer) -> None:
    venue.policy(**POLICY)
    key = venue.agent_key(AGENT)

    async def body() -> str:
        await asyncio.sleep(0)
        return "ordered"

    async def failing() -> str:
        raise RuntimeError("supplier API is down")

    async def scenario(client: Any, close: Callable[[], Any]) -> list[str]:
        try:
            ran = await arun_gated(client, order(42.5, call_id=None), body)
            failed = await arun_gated(client, order(20, call_id=None), failing)
            invalid = await arun_gated(client, order("450"), body)
            assert ran.result == "ordered"
            return [ran.kind, failed.kind, invalid.kind]
        finally:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    aclient = AsyncAgenitry(key, venue.id, base_url=live.url)
    sclient = Agenitry(key, venue.id, base_url=live.url)
    assert asyncio.run(scenario(aclient, aclient.close)) == ["ran", "failed", "invalid"]
    assert asyncio.run(scenario(sclient, sclient.close)) == ["ran", "failed", "invalid"]
