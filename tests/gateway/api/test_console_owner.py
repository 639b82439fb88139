"""The console's pages for what the owner sets, over real HTTP: spend against the limits,
the policies (a diff and a dry run before anything is saved), and the webhooks.

The spend gauges must say what :func:`spend_summary` counts; a preview changes nothing and
its counts are checked against a case computed by hand from docs/console.md; a save stores
exactly what was previewed, audited with the session's key; bad amounts and names come back
as a page with the gateway's sentence and the typed values; a webhook's secret shows once,
its deliveries (sent by a real deliverer to a real receiver) can be sent again; forged forms
change nothing; and what an owner or an attacker writes is never markup.

The module has a database of its own per store: its deliverer claims every due message of
its database (see support/isolated.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any, Optional

import httpx
import pytest

from agenitry.gateway import Gateway, ManualClock, Principal
from agenitry.gateway._clock import MINUTE, parse_iso
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.spend import spend_summary
from agenitry.gateway.service.webhook_delivery import RETRY_SCHEDULE, Deliverer
from support.console import (  # noqa: F401 - live_console, live_console_browsers, signed_in_owner: fixtures
    RED_TEAM,
    SQLITE_ONLY,
    Console,
    assert_console_headers,
    assert_nothing_injected,
    live_console,
    live_console_browsers,
    only_text,
    parse,
    refused_form,
    shown_literally,
    signed_in_owner,
)
from support.isolated import own_database, own_outboxes  # noqa: F401 - fixtures, found by their names
from support.receiver import Receiver, receiver_for_a_test_clock  # noqa: F401 - a fixture
from support.venues import Venue, make_venue

OWN = "voice-agent"
PREVIEW = "/console/policies/preview"
SAVE = "/console/policies/save"
#: "12" in full-width digits, as a phone's keyboard may type it.
FULL_WIDTH_12 = "\uff11\uff12"
#: What the editor says of text that is no amount.
NOT_AN_AMOUNT = "must be an amount such as 500 or 12.50 (or blank for no limit)"
#: What each foreign or tokenless post of a form tries: (form token or None, extra headers).
FORGERIES = {
    "no form token": (None, {}),
    "a wrong form token": ("x" * 43, {}),
    "another origin": ("", {"Origin": "http://evil.example"}),
}


# -- helpers ------------------------------------------------------------------------------------------


def ask(venue: Venue, amount: float, agent_id: str = OWN, action: str = "order_captured") -> dict[str, Any]:
    """A spend request of ``agent_id``; the gateway's decision."""
    body: dict[str, Any] = venue.gateway.authorize(venue.agent(agent_id), {"action": action, "amount": amount}).body
    return body


def policies(venue: Venue) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = venue.gateway.list_policies(venue.admin)["policies"]
    return found


def audited(venue: Venue, action: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = venue.gateway.list_events(venue.admin, venue.id, action=action)["events"]
    return found


def log_size(venue: Venue) -> int:
    return int(venue.gateway.list_events(venue.admin, venue.id, limit=1)["total"])


def editor(owner: Console, agent_id: Optional[str] = None) -> dict[str, Any]:
    """The policy editor's form as the page fills it in."""
    page = owner.get("/console/policies/edit", **({"agent_id": agent_id} if agent_id else {}))
    assert page.status_code == 200, page.text
    return parse(page.text).form(PREVIEW).posted()


def preview(
    owner: Console, agent_id: Optional[str] = None, *, any_action: Optional[bool] = None, **typed: str
) -> httpx.Response:
    """Open the editor, type ``typed`` over what it shows (and tick or untick "any action"), preview."""
    form = editor(owner, agent_id)
    form.update(typed)
    if any_action is not None:
        form.pop("any_action", None)
        form.update({"any_action": "yes"} if any_action else {})
    return owner.submit(PREVIEW, form, form.pop("csrf_token"))


def save_previewed(owner: Console, previewed: httpx.Response) -> httpx.Response:
    """Press "Save this policy" on a preview page."""
    assert previewed.status_code == 200, only_text(previewed.text)
    form = parse(previewed.text).form(SAVE).posted()
    return owner.submit(SAVE, form, form.pop("csrf_token"))


def dry_run_counts(html: str) -> dict[str, list[int]]:
    """The dry run's table: approved, pending, denied "As it is" and "With this change"."""
    rows = re.findall(r"<tr><th>([^<]+)</th>((?:<td class=\"num\">\d+</td>)+)</tr>", html)
    return {name: [int(n) for n in re.findall(r"\d+", cells)] for name, cells in rows}


def textarea(html: str, name: str) -> str:
    return str(parse(html).form(PREVIEW).posted()[name])


class _Panels(HTMLParser):
    """The spend page's panels: each one's title and the text lines of each of its gauges."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.panels: dict[str, list[list[str]]] = {}
        self._title: Optional[str] = None
        self._in: Optional[str] = None
        self._gauge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "h2":
            self._in = "h2"
        elif tag == "svg" and "gauge" in classes and self._title is not None:
            self.panels[self._title].append([])
            self._gauge = True
        elif tag == "text" and self._gauge:
            self._in = "text"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "text"):
            self._in = None
        elif tag == "svg":
            self._gauge = False

    def handle_data(self, data: str) -> None:
        if self._in == "h2":
            self._title = data.strip()
            self.panels[self._title] = []
        elif self._in == "text" and self._title is not None:
            self.panels[self._title][-1].append(data)


def gauges(html: str) -> dict[str, list[list[str]]]:
    """``{panel title: [[headline, detail] of the 24-hour gauge, ... of the 30-day gauge]}``."""
    reader = _Panels()
    reader.feed(html)
    reader.close()
    return reader.panels


def gauge_of(window: dict[str, Any], label: str) -> list[str]:
    """What a gauge of this window of :func:`spend_summary` says."""
    if window["limit"] is None:
        headline = f"{window['used_display']} {label} · no limit"
    else:
        headline = f"{window['used_display']} of {window['limit_display']} {label}"
    return [headline, f"{window['spent_display']} spent · {window['held_display']} held"]


@pytest.fixture
def hooks(venue: Venue) -> Iterator[Venue]:
    """The venue; its webhooks are removed afterwards, so no message of a test stays due."""
    yield venue
    for endpoint in venue.gateway.webhooks.list(venue.admin)["webhooks"]:
        if endpoint["removed_at"] is None:
            venue.gateway.webhooks.remove(venue.admin, endpoint["id"])


def add_webhook(owner: Console, **typed: Any) -> httpx.Response:
    """Fill in the webhooks page's form with ``typed`` and add it."""
    form = parse(owner.get("/console/webhooks").text).form("/console/webhooks").posted()
    form.update(typed)
    return owner.submit("/console/webhooks", form, form.pop("csrf_token"))


def new_secret(answer: httpx.Response) -> str:
    found = re.search(r'id="new-secret">(whsec_[^<]+)<', answer.text)
    assert found is not None, answer.text
    return found.group(1)


# -- spend ----------------------------------------------------------------------------------------------


def test_the_gauges_show_what_spend_summary_counts(owner: Console, venue: Venue) -> None:
    venue.policy(max_single_amount=5_000, max_daily_spend=2_000, max_monthly_spend=20_000)
    venue.policy(agent_id=OWN, max_single_amount=1_000, max_daily_spend=1_000, require_approval_above=100)
    executed = ask(venue, 80)
    venue.gateway.execute(venue.agent(OWN), executed["authorization_id"], actual_amount=70)
    assert ask(venue, 300)["status"] == "pending"
    assert ask(venue, 2_000)["denial_code"] == "max_single_amount"
    refused = ask(venue, 450)
    venue.gateway.deny(venue.admin, refused["authorization_id"])
    assert ask(venue, 40, agent_id="host-bot")["status"] == "approved"  # under the venue's policy alone

    page = owner.get("/console/spend")
    assert page.status_code == 200
    assert_nothing_injected(page.text)
    shown = gauges(page.text)
    # By hand: the agent spent $70 (executed at its actual amount) and holds $300 (pending);
    # the denied requests hold nothing; the host's $40 counts for the venue only.
    assert shown["The whole venue"] == [
        ["$410.00 of $2,000.00 in 24 hours", "$70.00 spent · $340.00 held"],
        ["$410.00 of $20,000.00 in 30 days", "$70.00 spent · $340.00 held"],
    ]
    assert shown[f"Agent {OWN}"] == [
        ["$370.00 of $1,000.00 in 24 hours", "$70.00 spent · $300.00 held"],
        ["$370.00 in 30 days · no limit", "$70.00 spent · $300.00 held"],
    ]
    # And each figure is the summary's, scope by scope.
    summary = spend_summary(venue.gateway, venue.admin)
    scopes = {"The whole venue": summary["venue"], **{f"Agent {s['agent_id']}": s for s in summary["agents"]}}
    assert set(shown) == set(scopes) == {"The whole venue", f"Agent {OWN}", "Agent host-bot"}
    for title, scope in scopes.items():
        assert shown[title] == [gauge_of(scope["daily"], "in 24 hours"), gauge_of(scope["monthly"], "in 30 days")]
    text = only_text(page.text)
    assert text.count("(no policy of its own: the venue's applies)") == 1  # the host's panel
    host = text[text.index("Agent host-bot") :]
    assert "(no policy of its own: the venue's applies)" in host
    assert "single $1,000.00 · 24 hours $1,000.00 · 30 days none · a person decides above $100.00" in text


def test_the_history_covers_7_30_or_90_days_and_refuses_other_numbers(owner: Console, venue: Venue) -> None:
    venue.policy(max_daily_spend=500)
    ask(venue, 20)
    for days in (7, 30, 90):
        page = owner.get("/console/spend", days=str(days))
        assert page.status_code == 200, page.text
        read = assert_nothing_injected(page.text)
        assert read.having("option", value=str(days), selected="")
        assert f"Day by day, last {days} days (UTC)" in only_text(page.text)
        histories = len(read.having("svg", **{"class": "chart bars"}))
        assert histories == 2 and len(read.having("g", **{"class": "day"})) == days * histories  # a bar a day
    for wrong in ("0", "91", "-7", "abc", "7.5", FULL_WIDTH_12, ""):
        refused = owner.get("/console/spend", days=wrong)
        assert refused.status_code == 422, (wrong, refused.text)
        assert_console_headers(refused)
        assert "days must be a whole number from 1 to 90" in only_text(assert_nothing_injected(refused.text).text)


# -- policies: the list and the editor -------------------------------------------------------------------


@SQLITE_ONLY
def test_amounts_show_in_the_venues_currency(gateway: Gateway, browsers: Any) -> None:
    yen, dinar = make_venue(gateway, currency="JPY"), make_venue(gateway, currency="BHD")
    yen.policy(max_single_amount=120_000, max_daily_spend=500_000)
    yen.policy(agent_id=OWN, require_approval_above=1_500, allowed_actions=["order_captured"])
    dinar.policy(max_single_amount=12.345, max_daily_spend=1_000.5)
    at_yen, at_dinar = browsers(), browsers()
    assert at_yen.sign_in(yen.admin_key).status_code == 303 and at_dinar.sign_in(dinar.admin_key).status_code == 303

    listed = only_text(at_yen.get("/console/policies").text)
    for amount in ("JPY 120,000", "JPY 500,000", "JPY 1,500"):
        assert amount in listed
    assert not re.search(r"JPY [\d,]+\.", listed), listed  # a yen has no cents
    assert listed.count("no limit") == 2 + 3  # the venue's two blank limits, the agent's three
    assert "order_captured" in listed and "any action" in listed
    listed = only_text(at_dinar.get("/console/policies").text)
    assert "BHD 12.345" in listed and "BHD 1,000.500" in listed
    assert not re.search(r"BHD [\d,]+\.\d\d(?!\d)", listed), listed  # three places, never two

    assert editor(at_yen)["max_single_amount"] == "120000"
    assert editor(at_yen, OWN)["require_approval_above"] == "1500"
    assert (editor(at_dinar)["max_single_amount"], editor(at_dinar)["max_daily_spend"]) == ("12.345", "1000.5")
    changed = preview(at_yen, OWN, require_approval_above="2000")
    assert "Approval above: JPY 1,500 → JPY 2,000" in only_text(changed.text)
    refused = preview(at_yen, OWN, require_approval_above="1500.5")
    assert refused.status_code == 422 and "JPY amounts have no decimal places" in only_text(refused.text)
    refused = preview(at_dinar, max_single_amount="0.0005")
    assert refused.status_code == 422 and "BHD amounts have at most 3 decimal places" in only_text(refused.text)


@SQLITE_ONLY
def test_the_editor_shows_the_stored_policy(owner: Console, venue: Venue) -> None:
    venue.policy(agent_id=OWN, max_single_amount=500, max_daily_spend=12.5, allowed_actions=["order_captured", "x.y"])
    form = editor(owner, OWN)
    assert form["agent_id"] == OWN
    assert (form["max_single_amount"], form["max_daily_spend"]) == ("500", "12.5")
    assert (form["max_monthly_spend"], form["require_approval_above"]) == ("", "")
    assert form["allowed_actions"] == "order_captured\nx.y"
    assert "any_action" not in form  # a list is set: "any action" is not ticked
    blank = editor(owner, "host-bot")  # an agent without a policy: nothing set, any action
    assert [blank[name] for name in ("max_single_amount", "max_daily_spend", "allowed_actions")] == ["", "", ""]
    assert blank["any_action"] == "yes"


def test_a_preview_counts_by_hand_and_changes_nothing(owner: Console, venue: Venue, clock: ManualClock) -> None:
    # The agent's policy: up to $1,000 a request and a day, a person above $100. Its three
    # requests ($50, $150, $300, one a minute) hold $500 in all, under every limit, so only
    # the threshold decides: as it is $50 passes and $150 and $300 wait; with the threshold at
    # $200, $50 and $150 pass and $300 waits. Nothing is denied either way.
    venue.policy(agent_id=OWN, max_single_amount=1_000, max_daily_spend=1_000, require_approval_above=100)
    asked = []
    for amount in (50, 150, 300):
        asked.append(ask(venue, amount))
        clock.advance(MINUTE)
    assert [a["status"] for a in asked] == ["approved", "pending", "pending"]
    stored, logged = policies(venue), log_size(venue)

    answer = preview(owner, OWN, require_approval_above="200")
    assert answer.status_code == 200, only_text(answer.text)
    text = only_text(assert_nothing_injected(answer.text).text)
    assert "Approval above: $100.00 → $200.00" in text
    assert text.count("→") == 1  # one change only
    assert dry_run_counts(answer.text) == {"As it is": [1, 2, 0], "With this change": [2, 1, 0]}
    assert "3 requests replayed through the policy engine" in text
    assert "1 request would be decided otherwise" in text
    changed = re.findall(r'href="/console/authorizations/(auth_\w+)"', answer.text)
    assert changed == [asked[1]["authorization_id"]]  # the $150 one: pending now, approved then
    assert "Save this policy" in text
    # A preview is only a look.
    assert policies(venue) == stored and log_size(venue) == logged
    assert venue.gateway.get_authorization(venue.admin, asked[1]["authorization_id"])["status"] == "pending"


def test_save_stores_what_was_previewed_audited_with_the_sessions_key(browsers: Any, venue: Venue) -> None:
    venue.policy(agent_id=OWN, max_single_amount=1_000, max_daily_spend=500, require_approval_above=100)
    # Signed in with another admin key than the one that set the policy: the log must name this one.
    _, phone = venue.gateway.create_key(venue.admin, role="admin", name="owner's phone")
    owner = browsers()
    assert phone is not None and owner.sign_in(phone).status_code == 303
    session_key = venue.gateway.authenticate(phone).key_id
    previewed = preview(
        owner,
        OWN,
        max_single_amount="750.25",
        max_daily_spend="",
        max_monthly_spend="9000",
        any_action=False,
        allowed_actions="order_captured, reservation_booked\r\ncomp_issued\n",
    )
    text = only_text(previewed.text)
    for line in (
        "Single-transaction limit: $1,000.00 → $750.25",
        "Daily limit (24 hours): $500.00 → no limit",  # a blank amount removes the limit
        "Monthly limit (30 days): no limit → $9,000.00",
        "Allowed actions: any action → order_captured, reservation_booked, comp_issued",
    ):
        assert line in text, text
    assert "Approval above" not in text.split("What changes")[1].split("Dry run")[0]  # unchanged
    saved = save_previewed(owner, previewed)
    assert saved.status_code == 303, saved.text
    [policy] = policies(venue)
    assert {name: policy[name] for name in policy if name.startswith(("max", "require", "allowed"))} == {
        "max_single_amount": 750.25,
        "max_daily_spend": None,
        "max_monthly_spend": 9000,
        "require_approval_above": 100,
        "allowed_actions": ["order_captured", "reservation_booked", "comp_issued"],
    }
    [update] = [event for event in audited(venue, "policy.updated") if event["actor"] == session_key]
    assert update["agent_id"] == OWN and update["context"]["id"] == policy["id"]
    assert (update["context"]["max_daily_spend"], update["context"]["max_single_amount"]) == (None, 750.25)
    listing = owner.get(saved.headers["location"])
    shown = only_text(listing.text)
    assert f"The policy of agent {OWN} is saved." in shown
    assert "$750.25" in shown and "order_captured, reservation_booked, comp_issued" in shown
    # Ticking "any action" again drops the list.
    assert save_previewed(owner, preview(owner, OWN, any_action=True)).status_code == 303
    assert policies(venue)[0]["allowed_actions"] is None


def test_a_preview_without_a_change_offers_no_save(owner: Console, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    same = preview(owner)
    assert "Nothing: the policy would stay as it is." in only_text(same.text)
    assert not [form for form in parse(same.text).forms if form.action == SAVE]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("typed", "sentence"),
    [
        *((typed, f"Daily limit (24 hours) {NOT_AN_AMOUNT}, not '{typed}'") for typed in ("abc", "-5", "1e9")),
        (FULL_WIDTH_12, f"Daily limit (24 hours) {NOT_AN_AMOUNT}, not '{FULL_WIDTH_12}'"),
        ("12.345", "USD amounts have at most 2 decimal places; got 12.345"),
        ("1000000000001", "must not exceed 1,000,000,000,000"),
    ],
)
def test_a_bad_amount_is_refused_and_the_form_keeps_what_was_typed(
    owner: Console, venue: Venue, typed: str, sentence: str
) -> None:
    venue.policy(agent_id=OWN, max_single_amount=100, max_daily_spend=500)
    stored, logged = policies(venue), log_size(venue)
    form = {**editor(owner, OWN), "max_single_amount": "80", "max_daily_spend": typed}
    form.pop("any_action")
    form["allowed_actions"] = "order_captured\ncomp_issued"
    token = form.pop("csrf_token")
    for path in (PREVIEW, SAVE):
        answer = owner.submit(path, form, token)
        assert answer.status_code == 422, (path, answer.text)
        page = assert_nothing_injected(answer.text)
        assert sentence in only_text(answer.text), only_text(answer.text)
        kept = page.form(PREVIEW).posted()
        assert (kept["max_daily_spend"], kept["max_single_amount"]) == (typed, "80")
        assert kept["allowed_actions"] == "order_captured\ncomp_issued" and "any_action" not in kept
        assert not [form for form in page.forms if form.action == SAVE]
    assert policies(venue) == stored and log_size(venue) == logged


@SQLITE_ONLY
def test_an_action_name_the_gateway_refuses_shows_its_sentence(owner: Console, venue: Venue) -> None:
    venue.policy(agent_id=OWN, max_single_amount=100)
    stored = policies(venue)
    with pytest.raises(GatewayError) as refused:
        venue.gateway.put_policy(venue.admin, {"agent_id": OWN, "allowed_actions": ["Order_Captured"]})
    for path in (PREVIEW, SAVE):
        form = {**editor(owner, OWN), "allowed_actions": "order_captured\nOrder_Captured"}
        form.pop("any_action")
        answer = owner.submit(path, form, form.pop("csrf_token"))
        assert answer.status_code == 422
        assert refused.value.message in only_text(answer.text)
        assert textarea(answer.text, "allowed_actions") == "order_captured\nOrder_Captured"
    assert policies(venue) == stored


def test_a_preview_for_an_agent_without_a_policy_says_it_creates_one(
    owner: Console, venue: Venue, browsers: Any
) -> None:
    venue.policy(max_single_amount=1_000)
    ask(venue, 80, agent_id="host-bot")
    answer = preview(owner, "host-bot", require_approval_above="50")
    text = only_text(answer.text)
    assert "Saving creates the policy of agent host-bot: it has none yet." in text
    assert "Approval above: no limit → $50.00" in text
    assert dry_run_counts(answer.text) == {"As it is": [1, 0, 0], "With this change": [0, 1, 0]}
    assert save_previewed(owner, answer).status_code == 303
    assert [p["agent_id"] for p in policies(venue)] == [None, "host-bot"]
    again = only_text(preview(owner, "host-bot", require_approval_above="60").text)
    assert "creates" not in again
    elsewhere = browsers()
    assert elsewhere.sign_in(make_venue(venue.gateway).admin_key).status_code == 303  # a venue without policies
    created = only_text(preview(elsewhere, max_daily_spend="9").text)
    assert "Saving creates the venue's policy: it has none yet." in created


def test_a_policy_is_deleted_and_audited(owner: Console, venue: Venue) -> None:
    venue.policy(max_single_amount=1_000)
    mine = venue.policy(agent_id=OWN, max_single_amount=100)
    page = parse(owner.get("/console/policies").text)
    path = f"/console/policies/{mine['id']}/delete"
    form = page.form(path).posted()
    answer = owner.submit(path, form, form.pop("csrf_token"))
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/policies")
    assert [p["agent_id"] for p in policies(venue)] == [None]
    [deleted] = audited(venue, "policy.deleted")
    assert (deleted["actor"], deleted["agent_id"], deleted["context"]) == (venue.admin.key_id, OWN, {"id": mine["id"]})
    again = owner.post(path)
    assert again.status_code == 404 and f"Policy '{mine['id']}' not found" in only_text(again.text)
    theirs = make_venue(venue.gateway).policy(max_single_amount=5)
    assert owner.post(f"/console/policies/{theirs['id']}/delete").status_code == 404


def test_forged_policy_forms_change_nothing(owner: Console, venue: Venue) -> None:
    policy = venue.policy(agent_id=OWN, max_single_amount=100)
    stored, logged = policies(venue), log_size(venue)
    loosened = {**editor(owner, OWN), "max_single_amount": "1000000"}
    loosened.pop("csrf_token")
    for name, (token, headers) in FORGERIES.items():
        refused_form(owner.submit(SAVE, loosened, token, headers))
        refused_form(owner.submit(f"/console/policies/{policy['id']}/delete", {}, token, headers))
        assert policies(venue) == stored and log_size(venue) == logged, name


# -- webhooks ----------------------------------------------------------------------------------------------


def test_a_webhooks_secret_shows_once(owner: Console, hooks: Venue) -> None:
    added = add_webhook(owner, url="https://example.com/hooks/agenitry", description="the owner's Slack")
    assert added.status_code == 201, added.text
    secret = new_secret(added)
    assert "Its signing secret is shown once" in only_text(added.text)
    [endpoint] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    assert (endpoint["url"], endpoint["events"], endpoint["format"]) == (
        "https://example.com/hooks/agenitry",
        None,
        "json",
    )
    later = [owner.get(path) for path in ("/console/webhooks", f"/console/webhooks/{endpoint['id']}")]
    later += [owner.get(path) for path in ("/console", "/console/audit", "/console/policies", "/console/spend")]
    for answer in later:
        assert answer.status_code == 200
        assert secret not in answer.text and secret[6:26] not in answer.text
        assert "whsec_" not in answer.text
    assert "the owner's Slack" in only_text(later[0].text) and "every event" in only_text(later[1].text)


def test_a_webhook_must_be_an_http_address(owner: Console, hooks: Venue) -> None:
    for url in ("ftp://example.com/hooks", "javascript:alert(1)", "example.com/hooks"):
        with pytest.raises(GatewayError) as refused:
            hooks.gateway.webhooks.add(hooks.admin, url)
        assert "http:// or https://" in refused.value.message
        answer = add_webhook(owner, url=url)
        assert answer.status_code == 422, answer.text
        assert refused.value.message in only_text(assert_nothing_injected(answer.text).text)
    assert hooks.gateway.webhooks.list(hooks.admin)["webhooks"] == []


def test_deliveries_are_listed_and_a_failed_one_is_sent_again(
    owner: Console, hooks: Venue, receiver: Receiver, clock: ManualClock
) -> None:
    hooks.policy(agent_id=OWN, max_single_amount=1_000, require_approval_above=100)
    added = add_webhook(owner, url=receiver.url("/hook"), events=["authorization.pending"])
    [endpoint] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    assert endpoint["events"] == ["authorization.pending"]
    attempts = len(RETRY_SCHEDULE) + 1
    receiver.trust("/hook", new_secret(added), answers=[500] * attempts)
    asked = ask(hooks, 450)
    page = owner.get(f"/console/webhooks/{endpoint['id']}")
    assert "authorization.pending" in only_text(page.text) and "pending" in only_text(page.text)

    deliverer = Deliverer(hooks.gateway.webhooks, clock=clock, timeout=5, jitter=lambda: 0.0)
    for _ in range(attempts):  # the receiver refuses every attempt of the schedule
        assert deliverer.run_once() == 1
        [message] = hooks.gateway.webhooks.deliveries(hooks.admin, endpoint["id"])["deliveries"]
        if message["next_attempt_at"]:
            clock.set(parse_iso(message["next_attempt_at"]) or 0)
    assert (message["status"], message["attempt_count"]) == ("failed", attempts)
    assert owner.sign_in(hooks.admin_key).status_code == 303  # the first session lapsed meanwhile

    page = owner.get(f"/console/webhooks/{endpoint['id']}")
    read = assert_nothing_injected(page.text)
    row = only_text(page.text).split(message["id"])[1]
    assert f"authorization.pending failed {attempts} each" in row
    assert row.count(": 500 ·") == attempts  # every attempt, with its answer
    retry = f"/console/webhooks/{endpoint['id']}/messages/{message['id']}/retry"
    form = read.form(retry).posted()
    answer = owner.submit(retry, form, form.pop("csrf_token"))
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/webhooks/{endpoint['id']}?retried={message['id']}"
    notice = only_text(owner.get(answer.headers["location"]).text)
    assert f"{message['id']} will be sent again within a few seconds." in notice
    [again] = hooks.gateway.webhooks.deliveries(hooks.admin, endpoint["id"])["deliveries"]
    assert (again["id"], again["status"]) == (message["id"], "pending")
    assert audited(hooks, "webhook.retried")[0]["actor"] == hooks.admin.key_id

    assert deliverer.run_once() == 1
    got = receiver.at("/hook")
    assert len(got) == attempts + 1 and {r.id for r in got} == {message["id"]}
    assert (got[-1].answered, got[-1].verified) == (200, True)
    assert got[-1].payload()["data"]["authorization"]["id"] == asked["authorization_id"]
    page = owner.get(f"/console/webhooks/{endpoint['id']}")
    assert "authorization.pending delivered" in only_text(page.text)
    assert not [form for form in parse(page.text).forms if form.action == retry]  # nothing left to send


def test_a_webhook_is_removed(owner: Console, hooks: Venue) -> None:
    assert add_webhook(owner, url="https://example.com/hooks").status_code == 201
    [endpoint] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    path = f"/console/webhooks/{endpoint['id']}/remove"
    form = parse(owner.get(f"/console/webhooks/{endpoint['id']}").text).form(path).posted()
    answer = owner.submit(path, form, form.pop("csrf_token"))
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/webhooks")
    assert hooks.gateway.webhooks.list(hooks.admin)["webhooks"][0]["removed_at"] is not None
    assert "removed" in only_text(owner.get("/console/webhooks").text)
    page = parse(owner.get(f"/console/webhooks/{endpoint['id']}").text)
    assert not [form for form in page.forms if form.action == path]
    assert audited(hooks, "webhook.removed")[0]["actor"] == hooks.admin.key_id


def test_another_venues_webhook_is_not_found(owner: Console, hooks: Venue, receiver: Receiver) -> None:
    theirs = make_venue(hooks.gateway)
    theirs.policy(max_single_amount=1_000, require_approval_above=1)
    endpoint, _ = theirs.gateway.webhooks.add(theirs.admin, receiver.url("/theirs"))
    try:
        ask(theirs, 5)
        [message] = theirs.gateway.webhooks.deliveries(theirs.admin, endpoint["id"])["deliveries"]
        answers = [
            owner.get(f"/console/webhooks/{endpoint['id']}"),
            owner.post(f"/console/webhooks/{endpoint['id']}/remove"),
            owner.post(f"/console/webhooks/{endpoint['id']}/messages/{message['id']}/retry"),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert f"Webhook '{endpoint['id']}' not found" in only_text(answers[0].text)
        assert f"Webhook message '{message['id']}' not found" in only_text(answers[2].text)
        assert theirs.gateway.webhooks.list(theirs.admin)["webhooks"][0]["removed_at"] is None
        assert audited(theirs, "webhook.retried") == []
    finally:
        theirs.gateway.webhooks.remove(theirs.admin, endpoint["id"])


@SQLITE_ONLY
def test_forged_webhook_forms_change_nothing(owner: Console, hooks: Venue, receiver: Receiver) -> None:
    hooks.policy(max_single_amount=1_000, require_approval_above=1)
    endpoint, _ = hooks.gateway.webhooks.add(hooks.admin, receiver.url("/hook"))
    ask(hooks, 5)
    [message] = hooks.gateway.webhooks.deliveries(hooks.admin, endpoint["id"])["deliveries"]
    logged = log_size(hooks)
    for name, (token, headers) in FORGERIES.items():
        added = {"url": "https://evil.example/hooks", "format": "json"}
        refused_form(owner.submit("/console/webhooks", added, token, headers))
        refused_form(owner.submit(f"/console/webhooks/{endpoint['id']}/remove", {}, token, headers))
        retry = f"/console/webhooks/{endpoint['id']}/messages/{message['id']}/retry"
        refused_form(owner.submit(retry, {}, token, headers))
        assert log_size(hooks) == logged, name
    [still] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    assert still["removed_at"] is None


# -- red team ------------------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_red_team_text_is_never_markup_on_these_pages(owner: Console, hooks: Venue, subtests: Any) -> None:
    hooks.policy(agent_id=OWN, max_single_amount=100)
    stored = policies(hooks)
    for name, payload in RED_TEAM.items():
        with subtests.test(msg=name):
            # As a policy's agent id: the editor shows it as text, and nothing is stored.
            opened = owner.get("/console/policies/edit", agent_id=payload)
            assert opened.status_code in (200, 422)
            assert_nothing_injected(opened.text)
            form = {**editor(owner), "agent_id": payload, "max_single_amount": "5"}
            token = form.pop("csrf_token")
            for path in (PREVIEW, SAVE):
                refused = owner.submit(path, form, token)
                assert refused.status_code == 422
                assert "agent_id must be 1-128 characters" in only_text(assert_nothing_injected(refused.text).text)
            # As allowed action names: refused with the gateway's sentence, the textarea keeps them as text.
            form = {**editor(owner, OWN), "allowed_actions": payload}
            form.pop("any_action")
            token = form.pop("csrf_token")
            for path in (PREVIEW, SAVE):
                refused = owner.submit(path, form, token)
                assert refused.status_code == 422
                shown_literally(refused.text, payload)
                assert "allowed_actions must be a lower-case name" in only_text(refused.text)
            assert policies(hooks) == stored
            # As a webhook's description and address.
            short = payload[:200]
            added = add_webhook(owner, url="https://example.com/hooks", description=short)
            assert added.status_code == 201
            [endpoint] = [e for e in hooks.gateway.webhooks.list(hooks.admin)["webhooks"] if e["description"] == short]
            for page in (added, owner.get("/console/webhooks"), owner.get(f"/console/webhooks/{endpoint['id']}")):
                shown_literally(page.text, short)
            refused = add_webhook(owner, url=payload)
            assert refused.status_code == 422
            assert_nothing_injected(refused.text)
            address = "https://example.com/h?q=" + "".join(c for c in payload if c.isprintable() and not c.isspace())
            added = add_webhook(owner, url=address[:2000])
            assert added.status_code == 201, only_text(added.text)
            [endpoint] = [e for e in hooks.gateway.webhooks.list(hooks.admin)["webhooks"] if e["url"] == address[:2000]]
            for page in (added, owner.get(f"/console/webhooks/{endpoint['id']}")):
                shown_literally(page.text, address[:2000])
            for endpoint in hooks.gateway.webhooks.list(hooks.admin)["webhooks"]:
                if endpoint["removed_at"] is None:
                    hooks.gateway.webhooks.remove(hooks.admin, endpoint["id"])


# -- the console's headers --------------------------------------------------------------------------------


@SQLITE_ONLY
def test_every_answer_of_these_pages_has_the_consoles_headers(owner: Console, hooks: Venue) -> None:
    policy = hooks.policy(agent_id=OWN, max_single_amount=100)
    answers = {
        "spend": owner.get("/console/spend"),
        "spend, 90 days": owner.get("/console/spend", days="90"),
        "spend, a bad number": owner.get("/console/spend", days="0"),
        "policies": owner.get("/console/policies"),
        "the editor": owner.get("/console/policies/edit", agent_id=OWN),
        "the editor, a long agent id": owner.get("/console/policies/edit", agent_id="a" * 300),
        "a preview": preview(owner, OWN, max_single_amount="200"),
        "a refused preview": preview(owner, OWN, max_single_amount="abc"),
        "a refused save": owner.post(SAVE, max_single_amount="abc"),
        "a forged save": owner.post(SAVE, csrf_token=None),
        "a save": save_previewed(owner, preview(owner, OWN, max_single_amount="300")),
        "the saved notice": owner.get("/console/policies", saved=policy["id"]),
        "a delete": owner.post(f"/console/policies/{policy['id']}/delete"),
        "a missing policy's delete": owner.post(f"/console/policies/{policy['id']}/delete"),
        "webhooks": owner.get("/console/webhooks"),
        "an added webhook": add_webhook(owner, url="https://example.com/hooks"),
        "a refused webhook": add_webhook(owner, url="ftp://example.com"),
        "a forged webhook": owner.post("/console/webhooks", csrf_token=None, url="https://example.com/x"),
        "a missing webhook": owner.get("/console/webhooks/wh_missing"),
        "a missing message": owner.post("/console/webhooks/wh_missing/messages/msg_missing/retry"),
    }
    [endpoint] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    answers["a webhook"] = owner.get(f"/console/webhooks/{endpoint['id']}")
    answers["a removal"] = owner.post(f"/console/webhooks/{endpoint['id']}/remove")
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "spend": 200,
        "spend, 90 days": 200,
        "spend, a bad number": 422,
        "policies": 200,
        "the editor": 200,
        "the editor, a long agent id": 422,
        "a preview": 200,
        "a refused preview": 422,
        "a refused save": 422,
        "a forged save": 403,
        "a save": 303,
        "the saved notice": 200,
        "a delete": 303,
        "a missing policy's delete": 404,
        "webhooks": 200,
        "an added webhook": 201,
        "a refused webhook": 422,
        "a forged webhook": 403,
        "a missing webhook": 404,
        "a missing message": 404,
        "a webhook": 200,
        "a removal": 303,
    }
    for name, answer in answers.items():
        assert_console_headers(answer)
        if answer.status_code != 303:
            assert answer.headers["content-type"].startswith("text/html"), name
            assert_nothing_injected(answer.text)


@SQLITE_ONLY
def test_notices_come_from_the_store_not_from_the_address(owner: Console, hooks: Venue) -> None:
    """A link anyone can send an owner never puts its own words on a console page."""
    policy = hooks.policy(agent_id=OWN, max_single_amount=100)
    words = "Your account is locked: call +1 555 0100"
    for path in ("/console/policies", "/console/webhooks/wh_x"):
        for query in ({"saved": words}, {"retried": words}):
            assert words not in only_text(owner.get(path, **query).text)
    shown = only_text(owner.get("/console/policies", saved=policy["id"]).text)
    assert f"The policy of agent {OWN} is saved." in shown
    assert add_webhook(owner, url="https://example.com/hooks").status_code == 201
    [endpoint] = hooks.gateway.webhooks.list(hooks.admin)["webhooks"]
    page = owner.get(f"/console/webhooks/{endpoint['id']}", retried=words)
    assert page.status_code == 200 and words not in only_text(page.text)
    assert not assert_nothing_injected(page.text).having("p", role="status")


def test_a_new_venue_has_the_pages_too(browsers: Any, gateway: Gateway) -> None:
    """A venue without a policy or a webhook: each page says so rather than failing."""
    venue_id = f"v-empty-{uuid.uuid4().hex[:12]}"
    gateway.create_venue(venue_id)
    _, secret = gateway.create_key(Principal.operator(venue_id), role="admin")
    assert secret is not None
    owner = browsers()
    assert owner.sign_in(secret).status_code == 303
    spend = only_text(owner.get("/console/spend").text)
    assert "$0.00 in 24 hours · no limit" in spend and "(no policy of its own)" in spend
    assert "No policy yet: every request is denied until one covers it." in only_text(
        owner.get("/console/policies").text
    )
    assert "No webhook yet." in only_text(owner.get("/console/webhooks").text)
