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
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Optional

import pytest

from agenitry import Agenitry, ApprovalRequired, SpendDenied
from agenitry.gateway import Gateway, ManualClock
from support.live import LiveServer
from support.venues import Venue, make_venue

AGENT = "voice-agent"
#: The gateway's default windows (ms): how long a pending request waits, how long an approval lasts.
APPROVAL_WINDOW_MS = 86_400_000
EXECUTE_WINDOW_MS = 300_000


@dataclass
class Outcome:
    ran: bool  # did the spending side effect actually happen (the driver's tool appends to a list)
    status: str  # "approved" | "denied" | "pending" | "error" as the adapter reported it to the model/graph
    authorization_id: Optional[str]
    message: str  # what the model/human would read


class AdapterDriver(abc.ABC):
    """Drives one adapter's gated spending tool through its framework."""

    name: str = "adapter"

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]]) -> None:
        self.client = client
        self.effects = effects

    def effect(self, action: str, amount: float, fail: bool) -> str:
        """The body of every driver's spending tool: the side effect, or a failure before it."""
        if fail:
            raise RuntimeError("supplier API is down")
        self.effects.append({"action": action, "amount": amount})
        return f"ordered {action} for {amount}"

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


class CoreDriver(AdapterDriver):
    """The reference: the core client's ``spend``, without any framework."""

    name = "core"

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]]) -> None:
        super().__init__(client, effects)
        self._pending: dict[str, tuple[str, float, bool]] = {}

    def _run(self, action: str, amount: float, fail: bool, spend: Callable[[], Any]) -> Outcome:
        try:
            with spend() as auth:
                message = self.effect(action, amount, fail)
                auth.actual_amount = amount
            return Outcome(True, "approved", auth.authorization_id, message)
        except ApprovalRequired as pending:
            authorization_id = pending.authorization_id
            if authorization_id is not None:
                self._pending[authorization_id] = (action, amount, fail)
            return Outcome(False, "pending", authorization_id, str(pending))
        except SpendDenied as denied:
            return Outcome(False, "denied", denied.authorization_id, str(denied))
        except RuntimeError as error:
            return Outcome(False, "error", None, str(error))

    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        return self._run(action, amount, fail, lambda: self.client.spend(action, amount))

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        action, amount, fail = self._pending[previous.authorization_id]
        record = self.client.get_authorization(previous.authorization_id)
        status = record["status"]
        if status == "pending":
            return Outcome(False, "pending", previous.authorization_id, "approval is still pending")
        if status != "approved":
            return Outcome(False, "denied", previous.authorization_id, f"authorization {status}")
        try:
            message = self.effect(action, amount, fail)
        except RuntimeError as error:
            self.client.reverse(previous.authorization_id)
            return Outcome(False, "error", previous.authorization_id, str(error))
        self.client.execute(previous.authorization_id, actual_amount=amount)
        return Outcome(True, "approved", previous.authorization_id, message)


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
