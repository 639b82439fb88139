"""Schemathesis against the live gateway's /openapi.json: every route, schema-valid and invalid data.

For every operation the document lists, schemathesis generates requests that fit its
schema and requests that do not, sends them with a valid admin key to a real server, and
runs its default checks on each answer: no 5xx; the status, content type, headers and
body conform to the document; data that breaks the schema is refused with a 4xx; a
required header left out is refused; a method the route lacks answers 405; and a keyed
route refuses the same request without a key and with a wrong one (ignored_auth).

Two adaptations, each for a reason:

- The document names the key as an ``Authorization`` header parameter of each keyed
  route, not as a security scheme, so a fuzzer cannot know it is the credentials. The
  test declares it as an HTTP bearer scheme before generating, which is what turns the
  ignored-auth check on (and stops schemathesis generating random keys).
- ``positive_data_acceptance`` is left out: the schema gives types, but the service has
  rules no JSON schema of it states (an action's pattern and reserved prefixes, ISO 4217
  codes, a currency's decimal places, a context's 16 KiB and 16 levels), so schema-valid
  data is often, and rightly, a 422. Refusals are pinned by tests/gateway/api/test_bad_input.py.

Schemathesis is driven through its Python API, not its pytest plugin: the plugin's
fixture-based loading reads ``request.node._nodeid``, which pytest 9.2 no longer has.

Path parameters are drawn both at random (so 404s are tested) and from a venue with
objects in every status (so answers with real records are checked against their schemas).
Hypothesis draws anew each run; a failure prints its seed and a curl command to replay it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import positive_data_acceptance

from agenitry.gateway import Gateway
from support.live import LiveServer
from support.venues import Venue

#: Examples per operation and mode: 2 modes x ~25 operations x 2 stores stay within a minute or so.
EXAMPLES = 12


def with_bearer_security(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the ``Authorization`` header parameter as what it is: an HTTP bearer scheme."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
    }
    for methods in spec["paths"].values():
        for operation in methods.values():
            parameters = operation.get("parameters", [])
            key = [p for p in parameters if p["in"] == "header" and p["name"].lower() == "authorization"]
            if key:
                operation["parameters"] = [p for p in parameters if p not in key]
                operation["security"] = [{"bearer": []}]
    return spec


class Scene:
    """A venue with an authorization in every status, policies, keys and events: the ids
    a fuzzer cannot guess, so that some requests reach real records."""

    def __init__(self, gateway: Gateway, venue: Venue) -> None:
        admin = venue.admin
        venue.policy(max_single_amount=1000, require_approval_above=100)
        venue.policy(agent_id="voice-agent", max_daily_spend=5000)

        def authorize(amount: float) -> str:
            fields = {"agent_id": "voice-agent", "action": "comp_issued", "amount": amount, "context": {"table": 12}}
            return str(gateway.authorize(admin, fields).body["authorization_id"])

        ids = {status: authorize(500 if status in ("pending", "denied") else 10) for status in ("approved", "pending")}
        ids.update({status: authorize(10) for status in ("executed", "settled", "reversed")})
        ids["denied"] = authorize(500)
        gateway.execute(admin, ids["executed"], actual_amount=7.5)
        gateway.execute(admin, ids["settled"])
        gateway.settle(admin, ids["settled"])
        gateway.reverse(admin, ids["reversed"])
        gateway.deny(admin, ids["denied"])
        event = gateway.log_event(admin, {"action": "order_captured", "amount": 42.5, "context": {"covers": 2}})
        self.values: dict[str, list[str]] = {
            "venue_id": [venue.id],
            "authorization_id": list(ids.values()),
            "policy_id": [policy["id"] for policy in gateway.list_policies(admin)["policies"]],
            # Never the admin key the fuzzer itself uses: revoking it would end the run.
            "key_id": [gateway.create_key(admin, role="agent", agent_id="fuzzed")[0]["id"]],
            "event_id": [event.body["id"]],
        }

    def path_parameters(self, operation: schemathesis.APIOperation) -> list[dict[str, str]]:
        names = [parameter.name for parameter in operation.path_parameters]
        if not names or not all(name in self.values for name in names):
            return []
        choices = max(len(self.values[name]) for name in names)
        return [{name: self.values[name][n % len(self.values[name])] for name in names} for n in range(choices)]


@pytest.fixture
def spec(live: LiveServer) -> dict[str, Any]:
    answer = httpx.get(f"{live.url}/openapi.json")
    assert answer.status_code == 200
    return with_bearer_security(answer.json())


def operations(spec: dict[str, Any], key: str) -> Iterator[schemathesis.APIOperation]:
    """Every operation, sending ``key`` as its bearer (and, for invalid data, at times no key or a wrong one)."""
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"bearer": {"bearer": key}}}})
    for result in schemathesis.openapi.from_dict(spec, config=config).get_all_operations():
        yield result.ok()


def fuzz(strategy: Any, url: str, excluded: list[Any]) -> None:
    """Send what ``strategy`` generates to ``url`` and run every check not ``excluded`` on each answer."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, excluded_checks=excluded)

    check()


def test_every_route_passes_schemathesis_default_checks(
    spec: dict[str, Any], live: LiveServer, gateway: Gateway, venue: Venue, subtests: Any
) -> None:
    scene = Scene(gateway, venue)
    tested = set()
    for operation in operations(spec, venue.admin_key):
        excluded = [positive_data_acceptance]
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            known = [operation.as_strategy(mode, path_parameters=fixed) for fixed in scene.path_parameters(operation)]
            strategy = st.one_of(operation.as_strategy(mode), *known)

            with subtests.test(msg=f"{operation.label} ({mode.value})"):
                try:
                    fuzz(strategy, live.url, excluded)
                except Unsatisfiable:
                    # Only plain strings in the path and no body: nothing can break the schema.
                    assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
                    continue
                tested.add(f"{operation.label} ({mode.value})")
    # Every route of the document was fuzzed, the keyed ones and the public ones, and
    # every route with a body or a typed parameter got invalid data too.
    for label in ("POST /v1/authorize", "PUT /v1/policies", "POST /v1/events/batch", "GET /v1/authorize"):
        assert {f"{label} (positive)", f"{label} (negative)"} <= tested
    assert {"GET /healthz (positive)", "GET /verify/{venue_id}/{event_id} (positive)"} <= tested
