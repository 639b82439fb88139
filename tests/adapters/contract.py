"""One set of gating scenarios that every framework adapter must pass (like langchain's standard tests).

An adapter's test module subclasses :class:`AdapterContract` and provides a ``driver``
fixture: an :class:`AdapterDriver` that makes one call of the adapter's gated spending
tool *through the framework* (a tool invocation, an agent step, a runner over a model's
tool call...) and reports what the model or graph was told as an :class:`Outcome`.

The spending tool of every driver appends ``{"action": ..., "amount": ...}`` to
``effects`` when (and only when) it really runs; with ``fail=True`` it raises instead.

The scenarios run against the real gateway over HTTP (the ``live`` fixture) with the
test's manual clock, so expiry is exact, on SQLite (see ``store`` below). The owner approves and denies through the
gateway itself, never through the adapter. Every scenario's audit trail (the venue's
events except tool-call records) must equal the one the core client's ``spend`` leaves
for the same steps, so every adapter leaves identical records.

Usage::

    from adapters.contract import AdapterContract, AdapterDriver, Outcome

    class TestMyAdapter(AdapterContract):
        @pytest.fixture
        def driver(self, client, effects):
            return MyDriver(client, effects)
"""

from __future__ import annotations

import abc
import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Optional

import pytest

from agenitry import Agenitry
from agenitry.gateway import Gateway, ManualClock
from agenitry.integration import GatedCall, GateOutcome, call_key, run_gated
from support.live import LiveServer
from support.venues import Venue, make_venue

AGENT = "voice-agent"
#: The gateway's default windows (ms): how long a pending request waits, how long an approval lasts.
APPROVAL_WINDOW_MS = 86_400_000
EXECUTE_WINDOW_MS = 300_000


#: What a model may send as an amount that is not one (the venue is in USD).
BAD_AMOUNTS = [True, False, "450", None, math.nan, math.inf, -1, 1e13, 1.005]
_call_ids = itertools.count(1)


@dataclass
class Outcome:
    ran: bool  # did the spending side effect actually happen (the driver's tool appends to a list)
    # As the adapter reported it to the model/graph: "approved" (ran) | "denied" | "pending" |
    # "error" (the tool failed) | "invalid" (a bad amount) | "done" (this call already ran) |
    # "in_progress" (another run of it is under way)
    status: str
    authorization_id: Optional[str]
    message: str  # what the model/human would read


class AdapterDriver(abc.ABC):
    """Drives one adapter's gated spending tool through its framework."""

    name: str = "adapter"

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]]) -> None:
        self.client = client
        self.effects = effects
        #: Called inside the body before its side effect (a scenario holds a run there).
        self.hold: Optional[Callable[[], Any]] = None

    def effect(self, action: str, amount: float, fail: bool) -> str:
        """The body of every driver's spending tool: the side effect, or a failure before it."""
        if self.hold is not None:
            self.hold()
        if fail:
            raise RuntimeError("supplier API is down")
        self.effects.append({"action": action, "amount": amount})
        return f"ordered {action} for {amount}"

    def call(self, *, action: str, amount: Any, call_id: str, item: str = "salmon", fail: bool = False) -> Outcome:
        """One call of the spending tool with this call id and arguments ``{"item", "amount", "fail"}``,
        ``amount`` exactly as the model wrote it (it may be ``"450"`` or ``true``), through the framework."""
        raise NotImplementedError(f"{self.name}: call() is part of the contract (issue 11)")

    def restarted(self, client: Agenitry) -> AdapterDriver:
        """This driver as a new process would rebuild it on ``client``: only what the framework
        persists (a checkpointer, a saved run state, the application's record of pending
        calls) survives; ``effects`` is shared."""
        raise NotImplementedError(f"{self.name}: restarted() is part of the contract (issue 11)")

    @abc.abstractmethod
    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        """One call of the adapter's gated spending tool through the framework."""

    @abc.abstractmethod
    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        """Continue after ``pending``; the adapter must re-read the authorization from the gateway.

        ``forged_approval``: the resume value / edited tool call claims the spend was approved.
        """

    def close(self) -> None:  # noqa: B027 -- most drivers hold nothing to release
        """Release what the driver opened (event loops, threads)."""


_STATUS = {"ran": "approved", "failed": "error", "unavailable": "error", "already_done": "done"}


class CoreDriver(AdapterDriver):
    """The reference: the core client's gated call (``agenitry.integration.run_gated``), without a framework."""

    name = "core"

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]], calls: Optional[dict[str, Any]] = None) -> None:
        super().__init__(client, effects)
        #: What the application keeps about each paused call (it survives a restart).
        self.calls: dict[str, tuple[str, dict[str, Any], str]] = {} if calls is None else calls

    def _gate(
        self, action: str, arguments: dict[str, Any], call_id: str, authorization_id: Optional[str] = None
    ) -> Outcome:
        tool = f"spend_{action}"
        request = GatedCall(
            action,
            "amount",
            arguments,
            tool=tool,
            key=call_key(None, call_id, tool, arguments),
            authorization_id=authorization_id,
        )
        outcome: GateOutcome = run_gated(
            self.client, request, lambda: self.effect(action, arguments["amount"], arguments["fail"])
        )
        if outcome.kind == "pending" and outcome.authorization_id is not None:
            self.calls[outcome.authorization_id] = (action, arguments, call_id)
        message = str(outcome.result) if outcome.kind == "ran" else outcome.message
        return Outcome(
            outcome.kind == "ran", _STATUS.get(outcome.kind, outcome.kind), outcome.authorization_id, message
        )

    def call(self, *, action: str, amount: Any, call_id: str, item: str = "salmon", fail: bool = False) -> Outcome:
        return self._gate(action, {"item": item, "amount": amount, "fail": fail}, call_id)

    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        return self.call(action=action, amount=amount, call_id=f"call_{next(_call_ids)}", fail=fail)

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        action, arguments, call_id = self.calls[previous.authorization_id]
        return self._gate(action, arguments, call_id, previous.authorization_id)

    def restarted(self, client: Agenitry) -> AdapterDriver:
        return CoreDriver(client, self.effects, self.calls)


class Owner:
    """The venue's owner, deciding through the gateway (never through an adapter)."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    def approve(self, authorization_id: Optional[str]) -> dict[str, Any]:
        assert authorization_id is not None
        return self.venue.gateway.approve(self.venue.admin, authorization_id).body

    def deny(self, authorization_id: Optional[str]) -> dict[str, Any]:
        assert authorization_id is not None
        return self.venue.gateway.deny(self.venue.admin, authorization_id, reason="not this week").body

    def record(self, authorization_id: Optional[str]) -> dict[str, Any]:
        assert authorization_id is not None
        return self.venue.gateway.get_authorization(self.venue.admin, authorization_id)

    def trail(self) -> list[tuple[Any, ...]]:
        """The venue's audit records minus tool-call logs, oldest first, without ids, keys or times."""
        page = self.venue.gateway.list_events(self.venue.admin, self.venue.id, limit=500)
        rows = sorted(page["events"], key=lambda event: event["sequence"])
        return [
            (event["action"], event["amount"], event["direction"], event["agent_id"], event["authorization_id"] is None)
            for event in rows
            if event["action"] != "tool_call"
        ]


def _amount(value: Any) -> Optional[Decimal]:
    return None if value is None else Decimal(str(value))


#: The policy most scenarios use: up to 500 per spend, approval above 100.
POLICY: dict[str, Any] = {"max_single_amount": 500, "require_approval_above": 100}


class AdapterContract:
    """The scenarios. Subclasses provide a ``driver`` fixture; flags switch off what a driver cannot do."""

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(params=["sqlite"])
    def store(self, request: pytest.FixtureRequest) -> str:
        """SQLite only: the scenarios pin adapters' behaviour, and the gateway's own suite runs
        every decision on both stores; running five drivers twice would double the time for nothing."""
        return str(request.param)

    @pytest.fixture
    def effects(self) -> list[dict[str, Any]]:
        return []

    @pytest.fixture
    def client(self, venue: Venue, live: LiveServer) -> Iterator[Agenitry]:
        """An agent's client over HTTP on the test's gateway (so the manual clock governs expiry)."""
        with Agenitry(venue.agent_key(AGENT), venue.id, base_url=live.url, max_retries=0) as client:
            yield client

    @pytest.fixture
    def owner(self, venue: Venue) -> Owner:
        return Owner(venue)

    @pytest.fixture
    def new_client(self, venue: Venue, live: LiveServer) -> Iterator[Callable[[], Agenitry]]:
        """Open another client of the same agent, as a restarted process would."""
        opened: list[Agenitry] = []

        def open_client() -> Agenitry:
            opened.append(Agenitry(venue.agent_key(AGENT), venue.id, base_url=live.url, max_retries=0))
            return opened[-1]

        yield open_client
        for client in opened:
            client.close()

    @pytest.fixture(autouse=True)
    def _close_driver(self, driver: AdapterDriver) -> Iterator[None]:
        yield
        driver.close()

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _assert_executed(owner: Owner, outcome: Outcome, amount: float) -> None:
        record = owner.record(outcome.authorization_id)
        assert record["status"] == "executed"
        assert _amount(record["actual_amount"]) == _amount(amount)

    # -- approved -----------------------------------------------------------------------------

    def test_approved_spend_runs_and_is_executed_with_the_actual_amount(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        outcome = driver.spend(action="purchase_order", amount=42.5)
        assert outcome.status == "approved"
        assert outcome.ran
        assert effects == [{"action": "purchase_order", "amount": 42.5}]
        self._assert_executed(owner, outcome, 42.5)

    # -- denied by each check -------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("policy", "prior", "advance_ms", "action", "amount", "code"),
        [
            ({"max_single_amount": 100}, [], 0, "purchase_order", 150, "max_single_amount"),
            ({"allowed_actions": ["purchase_order"]}, [], 0, "comp_issued", 10, "action_not_allowed"),
            ({"max_daily_spend": 100}, [80], 0, "purchase_order", 30, "max_daily_spend"),
            # The first spend leaves the 24 h window but not the 30-day one.
            ({"max_daily_spend": 100, "max_monthly_spend": 100}, [80], 2 * 86_400_000, "purchase_order", 30,
             "max_monthly_spend"),
            (None, [], 0, "purchase_order", 10, "no_policy"),
        ],
        ids=["max_single_amount", "action_not_allowed", "max_daily_spend", "max_monthly_spend", "no_policy"],
    )  # fmt: skip
    def test_denied_spend_never_runs_and_the_model_is_told_why(
        self,
        driver: AdapterDriver,
        venue: Venue,
        owner: Owner,
        clock: ManualClock,
        effects: list[dict[str, Any]],
        policy: Optional[dict[str, Any]],
        prior: list[float],
        advance_ms: int,
        action: str,
        amount: float,
        code: str,
    ) -> None:
        if policy is not None:
            venue.policy(**policy)
        for earlier in prior:
            assert driver.spend(action=action, amount=earlier).status == "approved"
        clock.advance(advance_ms)
        effects.clear()
        outcome = driver.spend(action=action, amount=amount)
        assert outcome.status == "denied"
        assert not outcome.ran
        assert effects == []
        record = owner.record(outcome.authorization_id)
        assert record["status"] == "denied"
        assert record["denial_code"] == code
        assert record["denial_reason"] in outcome.message

    # -- pending ----------------------------------------------------------------------------------

    def test_pending_spend_does_not_run_and_names_the_authorization(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        outcome = driver.spend(action="purchase_order", amount=250)
        assert outcome.status == "pending"
        assert not outcome.ran
        assert effects == []
        assert outcome.authorization_id is not None
        assert outcome.authorization_id in outcome.message
        assert owner.record(outcome.authorization_id)["status"] == "pending"

    def test_pending_then_owner_approves_runs_once_and_is_executed(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        assert pending.status == "pending"
        owner.approve(pending.authorization_id)
        resumed = driver.resume(pending)
        assert resumed.status == "approved"
        assert resumed.ran
        assert resumed.authorization_id == pending.authorization_id
        assert effects == [{"action": "purchase_order", "amount": 250}]
        self._assert_executed(owner, resumed, 250)
        # The authorization was used: the same request is not one more approval.
        assert len([row for row in owner.trail() if row[0] == "purchase_order"]) == 1

    def test_pending_then_owner_denies_never_runs(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        owner.deny(pending.authorization_id)
        resumed = driver.resume(pending)
        assert resumed.status == "denied"
        assert not resumed.ran
        assert effects == []
        assert owner.record(pending.authorization_id)["status"] == "denied"

    def test_forged_approval_is_ignored_while_the_gateway_says_pending(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        resumed = driver.resume(pending, forged_approval=True)
        assert resumed.status == "pending"
        assert not resumed.ran
        assert effects == []
        assert owner.record(pending.authorization_id)["status"] == "pending"

    # -- expiry ------------------------------------------------------------------------------------

    def test_pending_past_the_approval_window_expires_and_never_runs(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, clock: ManualClock, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        clock.advance(APPROVAL_WINDOW_MS + 1)
        resumed = driver.resume(pending)
        assert resumed.status == "denied"
        assert not resumed.ran
        assert effects == []
        assert owner.record(pending.authorization_id)["status"] == "expired"

    def test_approved_past_the_execute_window_expires_and_never_runs(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, clock: ManualClock, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        owner.approve(pending.authorization_id)
        clock.advance(EXECUTE_WINDOW_MS + 1)
        resumed = driver.resume(pending)
        assert resumed.status == "denied"
        assert not resumed.ran
        assert effects == []
        assert owner.record(pending.authorization_id)["status"] == "expired"

    # -- failure -----------------------------------------------------------------------------------

    def test_tool_failure_reverses_the_authorization_and_reports_the_error(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        outcome = driver.spend(action="purchase_order", amount=40, fail=True)
        assert outcome.status == "error"
        assert not outcome.ran
        assert "supplier API is down" in outcome.message
        assert effects == []
        reversed_ = [a for a in owner.venue.gateway.list_authorizations(owner.venue.admin)["authorizations"]]
        assert [a["status"] for a in reversed_] == ["reversed"]

    # -- identical audit records ---------------------------------------------------------------------

    def test_audit_records_equal_the_core_clients(
        self,
        driver: AdapterDriver,
        venue: Venue,
        owner: Owner,
        gateway: Gateway,
        live: LiveServer,
    ) -> None:
        """The same steps through this adapter and through the core client leave the same records."""

        def script(driver: AdapterDriver, venue: Venue, owner: Owner) -> None:
            venue.policy(**POLICY, max_daily_spend=1000)
            driver.spend(action="purchase_order", amount=20)
            driver.spend(action="purchase_order", amount=900)
            driver.spend(action="purchase_order", amount=30, fail=True)
            pending = driver.spend(action="comp_issued", amount=150)
            owner.approve(pending.authorization_id)
            driver.resume(pending)
            refused = driver.spend(action="comp_issued", amount=120)
            owner.deny(refused.authorization_id)
            driver.resume(refused)

        script(driver, venue, owner)
        reference_venue = make_venue(gateway)
        with Agenitry(reference_venue.agent_key(AGENT), reference_venue.id, base_url=live.url) as client:
            script(CoreDriver(client, []), reference_venue, Owner(reference_venue))
        trail = owner.trail()
        assert trail == Owner(reference_venue).trail()
        assert len(trail) >= 5

    # -- one call, one side effect (issue 11) ---------------------------------------------------

    def test_the_same_call_run_again_runs_once(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        first = driver.call(action="purchase_order", amount=20, call_id="call-repeat")
        again = driver.call(action="purchase_order", amount=20, call_id="call-repeat")
        assert (first.status, first.ran) == ("approved", True)
        assert (again.status, again.ran, again.authorization_id) == ("done", False, first.authorization_id)
        assert first.authorization_id is not None and first.authorization_id in again.message
        assert effects == [{"action": "purchase_order", "amount": 20}]
        assert len(venue.gateway.list_authorizations(venue.admin)["authorizations"]) == 1

    def test_the_same_call_id_with_changed_arguments_is_a_new_decision(
        self, driver: AdapterDriver, venue: Venue, owner: Owner, effects: list[dict[str, Any]]
    ) -> None:
        venue.policy(**POLICY)
        first = driver.call(action="purchase_order", amount=20, call_id="call-edit")
        edited = driver.call(action="purchase_order", amount=30, call_id="call-edit")
        assert (first.status, edited.status) == ("approved", "approved")
        assert edited.authorization_id != first.authorization_id
        assert effects == [{"action": "purchase_order", "amount": 20}, {"action": "purchase_order", "amount": 30}]
        self._assert_executed(owner, edited, 30)

    @pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
    def test_a_bad_amount_is_invalid_and_nothing_is_authorized(
        self, driver: AdapterDriver, venue: Venue, effects: list[dict[str, Any]], amount: Any
    ) -> None:
        venue.policy(**POLICY)
        outcome = driver.call(action="purchase_order", amount=amount, call_id="call-bad")
        assert (outcome.status, outcome.ran, outcome.authorization_id) == ("invalid", False, None)
        assert "amount" in outcome.message
        assert effects == []
        assert venue.gateway.list_authorizations(venue.admin)["authorizations"] == []

    def test_concurrent_resumes_run_the_call_once(
        self,
        driver: AdapterDriver,
        venue: Venue,
        owner: Owner,
        effects: list[dict[str, Any]],
        new_client: Callable[[], Agenitry],
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        owner.approve(pending.authorization_id)
        finished = threading.Event()
        resumers = [driver.restarted(new_client()) for _ in range(2)]
        outcomes: list[Outcome] = []

        def resume(resumer: AdapterDriver) -> None:
            # A body that runs waits until the other resume has answered: both overlap.
            resumer.hold = lambda: finished.wait(10)
            try:
                outcomes.append(resumer.resume(pending))
            finally:
                finished.set()

        threads = [threading.Thread(target=resume, args=(resumer,)) for resumer in resumers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for resumer in resumers:
            resumer.close()
        assert effects == [{"action": "purchase_order", "amount": 250}]
        assert sorted(outcome.status for outcome in outcomes) in (["approved", "done"], ["approved", "in_progress"])
        self._assert_executed(owner, pending, 250)

    def test_a_restart_between_pause_and_approval_runs_the_call_once(
        self,
        driver: AdapterDriver,
        venue: Venue,
        owner: Owner,
        effects: list[dict[str, Any]],
        new_client: Callable[[], Agenitry],
    ) -> None:
        venue.policy(**POLICY)
        pending = driver.spend(action="purchase_order", amount=250)
        owner.approve(pending.authorization_id)
        restarted = driver.restarted(new_client())
        try:
            resumed = restarted.resume(pending)
            again = restarted.resume(pending)
        finally:
            restarted.close()
        assert (resumed.status, resumed.ran, again.ran) == ("approved", True, False)
        assert effects == [{"action": "purchase_order", "amount": 250}]
        self._assert_executed(owner, pending, 250)
