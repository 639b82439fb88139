"""The owner's console over real HTTP, as an owner's browser without JavaScript would use it
and as an attacker would try it: sign-in and its cookie, sessions that end, forms that only
count from the console's own pages, decisions recorded with the session's key, the console's
headers, escaping of everything an agent or an owner can write, and what the pages hide.

Each test runs on SQLite and PostgreSQL where the store keeps what it checks (sessions,
authorizations, keys); the rest run on SQLite.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from agenitry.gateway import Gateway, ManualClock, Principal
from agenitry.gateway._clock import HOUR, iso
from agenitry.gateway.api.console.auth import SESSION_COOKIE, SIGN_IN_BURST, SIGN_IN_COOKIE
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.sessions import SESSION_TTL
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
from support.live import LiveServer
from support.venues import Venue, make_venue

OWN = "voice-agent"


def pending(venue: Venue, amount: float = 450, **fields: Any) -> str:
    """A request of the voice agent that waits for the owner (the policy asks above $100)."""
    venue.policy(max_single_amount=10_000, require_approval_above=100)
    decision = venue.gateway.authorize(venue.agent(OWN), {"action": "order_captured", "amount": amount, **fields}).body
    assert decision["status"] == "pending", decision
    return str(decision["authorization_id"])


def status(venue: Venue, authorization_id: str) -> str:
    return str(venue.gateway.get_authorization(venue.admin, authorization_id)["status"])


def cookie_attributes(answer: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the ``Set-Cookie`` for ``name`` (lower-case names; flags map to "")."""
    [header] = [h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    value, *parts = (part.strip() for part in header.split(";"))
    attributes = {"value": value.split("=", 1)[1]}
    for part in parts:
        name_, _, setting = part.partition("=")
        attributes[name_.lower()] = setting
    return attributes


# -- signing in ------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_pages_lead_to_sign_in_and_back(console: Console) -> None:
    assert console.get("/").headers["location"] == "/console"
    for path in ("/console", "/console/authorizations?status=pending", "/console/keys", "/console/pending"):
        answer = console.http.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?then=" + path.replace("?", "%3F").replace("=", "%3D")
    form = console.get("/console/login", then="/console/keys")
    assert form.status_code == 200
    page = assert_nothing_injected(form.text)
    assert page.having("input", name="key", type="password")
    assert page.value("then") == "/console/keys"
    forged = console.http.post("/console/authorizations/auth_x/approve")
    assert (forged.status_code, forged.headers["location"]) == (303, "/console/login?then=/console")


def test_an_admin_key_signs_in_with_a_strict_cookie_that_is_not_the_key(console: Console, venue: Venue) -> None:
    answer = console.sign_in(venue.admin_key, then="/console/keys")
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/keys")
    cookie = cookie_attributes(answer, SESSION_COOKIE)
    assert {"httponly", "path", "samesite", "max-age"} <= set(cookie)
    assert (cookie["path"], cookie["samesite"].lower(), cookie["max-age"]) == (
        "/console",
        "strict",
        str(SESSION_TTL // 1000),
    )
    assert "secure" not in cookie  # reached over plain HTTP here; see the next test
    assert len(cookie["value"]) >= 40 and venue.admin_key not in cookie["value"]
    assert cookie_attributes(answer, SIGN_IN_COOKIE)["max-age"] == "0"  # the sign-in form's token is spent
    pages = [
        console.get(path) for path in ("/console", "/console/pending", "/console/authorizations", "/console/audit")
    ]
    pages.append(console.get("/console/keys"))
    for page in [answer, *pages]:
        assert page.status_code in (200, 303)
        assert venue.admin_key not in page.text and venue.admin_key not in str(page.headers)
        assert venue.admin_key[:20] not in page.text  # not even most of it
    assert f"{venue.admin_key[:11]}\u2026" in only_text(pages[-1].text)  # the keys page lists its prefix only


@SQLITE_ONLY
def test_the_cookie_is_secure_when_the_console_is_reached_over_tls(console: Console, venue: Venue) -> None:
    form = console.http.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in cookie_attributes(form, SIGN_IN_COOKIE)
    fields = {"token": parse(form.text).value("token"), "then": "/console", "key": venue.admin_key}
    # httpx keeps a Secure cookie for https only: hand the form's token over as a proxy would.
    answer = console.http.post(
        "/console/login",
        data=fields,
        headers={"X-Forwarded-Proto": "https", "Cookie": f"{SIGN_IN_COOKIE}={fields['token']}"},
    )
    assert answer.status_code == 303
    assert "secure" in cookie_attributes(answer, SESSION_COOKIE)


def test_agent_unknown_and_revoked_keys_are_refused_with_a_sentence(console: Console, venue: Venue) -> None:
    agent_key = venue.agent_key(OWN)
    refused = console.sign_in(agent_key)
    assert refused.status_code == 403
    assert "This is an agent's key: an agent cannot sign in to the console." in only_text(refused.text)
    assert agent_key not in refused.text  # the typed key is not written back into the page
    _, revoked = venue.gateway.create_key(venue.admin, role="admin")
    assert revoked is not None
    venue.gateway.revoke_key(venue.admin, venue.gateway.authenticate(revoked).key_id)
    for key in (revoked, "ag_" + "x" * 40, "not a key at all"):
        answer = console.sign_in(key)
        assert answer.status_code == 401
        assert "That key is not valid, or it was revoked." in only_text(answer.text)
        assert key not in answer.text
    empty = console.sign_in("   ")
    assert empty.status_code == 422 and "Enter the venue's admin key" in only_text(empty.text)
    assert console.session_cookie is None
    assert console.get("/console").status_code == 303


@SQLITE_ONLY
def test_the_sign_in_form_needs_its_own_token(console: Console, venue: Venue) -> None:
    token = parse(console.get("/console/login").text).value("token")
    attempts = [
        {"key": venue.admin_key},  # no token
        {"key": venue.admin_key, "token": "forged-" + token},  # not the cookie's
    ]
    for fields in attempts:
        answer = console.http.post("/console/login", data=fields)
        assert answer.status_code == 403, answer.text
        assert "This sign-in form has expired or came from elsewhere" in only_text(answer.text)
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    # The right token, posted from another origin (a login forgery), is refused too.
    token = parse(console.get("/console/login").text).value("token")
    foreign = console.http.post(
        "/console/login", data={"key": venue.admin_key, "token": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    # And without its cookie: a page of another site cannot plant the pair.
    console.http.cookies.clear()
    assert console.http.post("/console/login", data={"key": venue.admin_key, "token": token}).status_code == 403


@SQLITE_ONLY
def test_sign_in_goes_back_only_to_a_console_page(console: Console, venue: Venue) -> None:
    for then in ("//evil.example/console", "https://evil.example/console", "/\\evil.example", "javascript:alert(1)"):
        form = parse(console.get("/console/login", then=then).text)
        assert form.value("then") == "/console"
    answer = console.sign_in(venue.admin_key, then="https://evil.example/")
    assert answer.headers["location"] == "/console"
    assert console.get("/console/login", then="//evil.example").headers["location"] == "/console"


@SQLITE_ONLY
def test_a_long_deep_link_survives_signing_in(console: Console, venue: Venue, browsers: Callable[..., Console]) -> None:
    wanted = "/console/authorizations?" + urlencode({"agent_id": "a" * 128, "action": "b" * 64, "since": "2026-01-01"})
    first = console.http.get(wanted)
    assert first.status_code == 303
    form = console.http.get(first.headers["location"])
    assert form.status_code == 200, form.text
    assert parse(form.text).value("then") == wanted
    assert console.sign_in(venue.admin_key, then=wanted).headers["location"] == wanted
    # Past any sensible length it leads to the console's first page instead of failing.
    assert parse(browsers().get("/console/login", then="/console/" + "x" * 5000).text).value("then") == "/console"


@SQLITE_ONLY
def test_sign_in_attempts_are_limited_per_address(
    browsers: Callable[..., Console], console: Console, venue: Venue
) -> None:
    answers = [console.sign_in("ag_wrong").status_code for _ in range(SIGN_IN_BURST)]
    assert answers == [401] * SIGN_IN_BURST
    limited = console.sign_in(venue.admin_key)  # the right key, too late
    assert limited.status_code == 429
    assert re.search(r"Too many sign-in attempts from this address: try again in \d+ s\.", only_text(limited.text))
    assert console.session_cookie is None
    # Another address (the loopback network is 127/8) is still served.
    other = browsers(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert other.sign_in(venue.admin_key).status_code == 303


# -- sessions that end ------------------------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(owner: Console, live: LiveServer) -> None:
    cookie = owner.session_cookie
    assert cookie is not None
    token = owner.csrf_token()
    refused_form(owner.post("/console/logout", csrf_token=None))  # sign-out is a form like any other
    assert owner.get("/console").status_code == 200
    answer = owner.post("/console/logout", csrf_token=token)
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/login?then=/console")
    assert cookie_attributes(answer, SESSION_COOKIE)["max-age"] == "0"
    assert owner.get("/console").status_code == 303
    # The old cookie, kept and replayed, opens nothing: not the pages, not the forms.
    with httpx.Client(base_url=live.url, cookies={SESSION_COOKIE: cookie}) as replay:
        for path in ("/console", "/console/pending", "/console/keys"):
            answer = replay.get(path)
            assert (answer.status_code, answer.headers["location"].split("?")[0]) == (303, "/console/login")
        assert replay.post("/console/keys", data={"csrf_token": token, "role": "admin"}).status_code == 303


def test_revoking_the_sessions_key_ends_the_session(owner: Console, venue: Venue) -> None:
    assert owner.get("/console/keys").status_code == 200
    answer = owner.post(f"/console/keys/{venue.admin.key_id}/revoke")
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/keys")
    assert owner.get("/console/keys").status_code == 303
    assert owner.sign_in(venue.admin_key).status_code == 401


def test_a_session_lapses_at_its_expiry(owner: Console, clock: ManualClock) -> None:
    clock.advance(SESSION_TTL - 1)
    assert owner.get("/console").status_code == 200
    clock.advance(1)
    answer = owner.get("/console")
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/login?then=/console")


# -- forms that come from elsewhere ------------------------------------------------------------------


def test_a_forged_form_changes_nothing(
    owner: Console, venue: Venue, live: LiveServer, browsers: Callable[..., Console]
) -> None:
    authorization_id = pending(venue)
    path = f"/console/authorizations/{authorization_id}/approve"
    token = owner.csrf_token()
    other_session = browsers()
    assert other_session.sign_in(venue.admin_key).status_code == 303
    forgeries = {
        "no form token": owner.post(path, csrf_token=None),
        "a wrong form token": owner.post(path, csrf_token="x" * len(token)),
        "another session's form token": owner.post(path, csrf_token=other_session.csrf_token()),
        "another origin": owner.post(path, csrf_token=token, headers={"Origin": "http://evil.example"}),
        "an opaque origin": owner.post(path, csrf_token=token, headers={"Origin": "null"}),
        "a cross-site fetch": owner.post(path, csrf_token=token, headers={"Sec-Fetch-Site": "cross-site"}),
        "a sibling site": owner.post(path, csrf_token=token, headers={"Sec-Fetch-Site": "same-site"}),
    }
    for forgery, answer in forgeries.items():
        refused_form(answer)
        assert status(venue, authorization_id) == "pending", forgery
    for other in (f"/console/authorizations/{authorization_id}/deny", "/console/keys"):
        refused_form(owner.post(other, csrf_token=None, reason="forged", role="admin"))
    assert status(venue, authorization_id) == "pending"
    assert len(venue.gateway.list_keys(venue.admin)["keys"]) == 2  # the admin's and the agent's
    # Without any session, a forged post only leads to the sign-in page.
    with httpx.Client(base_url=live.url) as stranger:
        answer = stranger.post(path, data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    # The real form, from the console itself, does it.
    done = owner.post(
        f"/console/authorizations/{authorization_id}/approve",
        csrf_token=token,
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert done.status_code == 303
    assert status(venue, authorization_id) == "approved"


# -- decisions ------------------------------------------------------------------------------------------


def test_decisions_are_recorded_with_the_sessions_key(
    owner: Console, venue: Venue, browsers: Callable[..., Console]
) -> None:
    first, second = pending(venue, reason="Omakase for four"), pending(venue, amount=300)
    approved = owner.approve(first, note="Regulars, fine")
    assert (approved.status_code, approved.headers["location"]) == (303, f"/console?decided={first}")
    assert f"{first} is approved." in only_text(owner.get(approved.headers["location"]).text)
    # Another admin key of the venue, on another device: its decisions carry its own key id.
    _, phone_key = venue.gateway.create_key(venue.admin, role="admin", name="owner's phone")
    assert phone_key is not None
    phone_key_id = venue.gateway.authenticate(phone_key).key_id
    phone = browsers()
    assert phone.sign_in(phone_key).status_code == 303
    denied = phone.deny(second, reason="Not tonight", back=f"/console/authorizations/{second}")
    assert (denied.status_code, denied.headers["location"]) == (303, f"/console/authorizations/{second}")
    record = venue.gateway.get_authorization(venue.admin, first)
    assert (record["status"], record["decided_by"], record["note"]) == (
        "approved",
        venue.admin.key_id,
        "Regulars, fine",
    )
    record = venue.gateway.get_authorization(venue.admin, second)
    assert (record["status"], record["decided_by"]) == ("denied", phone_key_id)
    assert (record["denial_code"], record["denial_reason"]) == ("denied_by_owner", "Not tonight")
    shown = only_text(owner.get(f"/console/authorizations/{second}").text)
    assert "Denied because Not tonight denied_by_owner" in shown and f"Decided by key {phone_key_id}" in shown
    [denial] = venue.gateway.list_events(venue.admin, venue.id, action="authorization.denied")["events"]
    assert denial["actor"] == phone_key_id  # the audit trail says who, too
    # An address that claims another outcome still shows the gateway's.
    claimed = only_text(owner.get("/console", decided=second, outcome="approved").text)
    assert f"{second} is denied." in claimed and "is approved" not in claimed
    listing = only_text(owner.get("/console/authorizations").text)
    assert listing.count(venue.admin.key_id) == 1 and listing.count(phone_key_id) == 1
    assert "1 pending request" not in only_text(owner.get("/console").text)


def test_a_request_leaves_the_queue_when_it_expires(owner: Console, venue: Venue, clock: ManualClock) -> None:
    asked = pending(venue)
    clock.advance(24 * HOUR - 30_000)
    assert owner.sign_in(venue.admin_key).status_code == 303  # the first session lapsed after 12 h
    assert "Decide within under a minute" in only_text(owner.get("/console").text)
    token = owner.csrf_token()
    clock.advance(30_001)
    assert "0 pending requests" in only_text(owner.get("/console").text)
    answer = owner.approve(asked, csrf_token=token)
    assert answer.status_code == 409, answer.text
    assert "expired" in only_text(answer.text)
    assert status(venue, asked) == "expired"


def test_a_second_decision_shows_the_gateways_sentence(owner: Console, venue: Venue) -> None:
    authorization_id = pending(venue)
    assert owner.approve(authorization_id).status_code == 303
    with pytest.raises(GatewayError) as refused:
        venue.gateway.deny(venue.admin, authorization_id)
    answer = owner.deny(authorization_id, reason="too late")
    assert answer.status_code == 409
    page = assert_nothing_injected(answer.text)
    assert refused.value.message in " ".join(page.text.split())
    assert "Nothing was changed ( invalid_transition )" in only_text(answer.text)
    assert status(venue, authorization_id) == "approved"


def test_another_venues_authorization_is_not_found(owner: Console, venue: Venue) -> None:
    theirs = pending(make_venue(venue.gateway))
    for answer in (owner.get(f"/console/authorizations/{theirs}"), owner.approve(theirs), owner.deny(theirs)):
        assert answer.status_code == 404
        assert f"Authorization '{theirs}' not found" in only_text(answer.text)
    assert owner.post("/console/keys/key_not_mine/revoke").status_code == 404
    assert theirs not in owner.get("/console", decided=theirs).text


def test_a_malformed_console_address_is_answered_with_a_page(owner: Console, http: httpx.Client) -> None:
    too_long = owner.get("/console/authorizations", agent_id="a" * 201)
    missing = owner.get("/console/no-such-page")
    for answer, status in ((too_long, 422), (missing, 404)):
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith("text/html")
    assert "agent_id" in only_text(too_long.text) and "200 characters" in only_text(too_long.text)
    assert "No such route" in only_text(missing.text)
    # The API keeps answering JSON.
    assert http.get("/v1/no-such-route").json()["code"] == "not_found"


# -- headers --------------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_every_console_answer_has_the_consoles_headers(live: LiveServer, console: Console, venue: Venue) -> None:
    authorization_id = pending(venue)
    answers = [console.get("/console"), console.get("/console/login"), console.sign_in("ag_wrong")]
    answers.append(console.http.post("/console/login", data={"key": "ag_x"}))  # 403: no form token
    answers.append(console.sign_in(venue.admin_key))
    for path in ("/console", "/console/pending", "/console/authorizations", "/console/audit", "/console/keys"):
        answers.append(console.get(path))
    answers += [
        console.get(f"/console/authorizations/{authorization_id}"),
        console.get("/console/authorizations/auth_missing"),  # 404 page
        console.get("/console/audit", since="yesterday"),  # 422 page
        console.post("/console/keys", role="agent", agent_id="host-bot"),  # 201: the new key's page
        console.approve(authorization_id, csrf_token=None),  # 403
        console.approve(authorization_id),  # 303
        console.deny(authorization_id),  # 409
        console.get("/console/login"),  # 303: signed in already
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [303, 200, 401, 403, 303, 200, 200, 200, 200, 200, 200, 404, 422, 201, 403, 303, 409, 303]
    for answer in answers:
        assert_console_headers(answer)
        if answer.status_code != 303:
            assert answer.headers["content-type"].startswith("text/html")
            assert_nothing_injected(answer.text)
    script = console.get("/static/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


# -- escaping: what agents and owners write is shown as text, never as markup ----------------------------


def test_red_team_text_is_shown_as_text_on_every_page(
    browsers: Callable[..., Console], gateway: Gateway, subtests: Any
) -> None:
    venue_id = f"v-red-{uuid.uuid4().hex[:12]}"
    gateway.create_venue(venue_id, name=RED_TEAM["attribute break-out"])
    _, secret = gateway.create_key(Principal.operator(venue_id), role="admin")
    assert secret is not None
    venue = Venue(gateway, venue_id, gateway.authenticate(secret), secret)
    owner = browsers()
    assert owner.sign_in(secret).status_code == 303
    shown_literally(owner.get("/console").text, RED_TEAM["attribute break-out"])  # the venue's name
    for name, payload in RED_TEAM.items():
        with subtests.test(msg=name):
            short = payload[:200]
            asked = pending(venue, reason=payload, context={short: payload, "table": 7})
            shown_context = json.dumps(payload, ensure_ascii=False)
            for path in ("/console", "/console/pending", f"/console/authorizations/{asked}"):
                page = owner.get(path)
                shown_literally(page.text, payload)
                shown_literally(page.text, shown_context)
            assert owner.approve(asked, note=payload).status_code == 303
            shown_literally(owner.get(f"/console/authorizations/{asked}").text, payload)
            refused = pending(venue)
            assert owner.deny(refused, reason=payload).status_code == 303
            shown_literally(owner.get(f"/console/authorizations/{refused}").text, payload)
            created = owner.post("/console/keys", role="agent", agent_id="host-bot", name=short)
            assert created.status_code == 201
            shown_literally(created.text, short)
            shown_literally(owner.get("/console/keys").text, short)
            for path in ("/console/authorizations", "/console/audit"):
                filtered = assert_nothing_injected(owner.get(path, agent_id=short, action=short).text)
                assert filtered.values("agent_id") == [short] and filtered.values("action") == [short]
                bad_date = owner.get(path, since=short)
                assert bad_date.status_code == 422
                shown_literally(bad_date.text, short)
            # The notice after a decision comes from the gateway, not from words in the address.
            notice = owner.get("/console", decided=short)
            assert not assert_nothing_injected(notice.text).having("p", role="status")
            # Agent ids and actions never hold such text: the gateway refuses it.
            wrong = owner.post("/console/keys", role="agent", agent_id=short)
            assert wrong.status_code == 422 and "agent_id must be 1-128 characters" in only_text(wrong.text)
            assert_nothing_injected(wrong.text)
            with pytest.raises(GatewayError):
                gateway.authorize(venue.agent(OWN), {"action": short, "amount": 1})
            form = browsers().get("/console/login", then="/console/" + short)
            assert parse(form.text).value("then") == "/console/" + short
            assert_nothing_injected(form.text)


def test_a_decisions_way_back_stays_on_the_console(owner: Console, venue: Venue) -> None:
    for back in ("javascript:alert(1)", "//evil.example/console/authorizations/x", "https://evil.example"):
        authorization_id = pending(venue)
        answer = owner.approve(authorization_id, back=back)
        assert answer.headers["location"] == f"/console?decided={authorization_id}"


# -- what the pages show, and what they hide ---------------------------------------------------------------


def test_a_pending_card_shows_the_request_as_the_agent_made_it(owner: Console, venue: Venue) -> None:
    authorization_id = pending(
        venue, reason="Omakase for four, table 12", context={"table": 12, "dish": "Café crème 北京烤鸭", "note": "a<b"}
    )
    page = owner.get("/console")
    shown = only_text(page.text)
    for fact in ("1 pending request", "$450.00", "order_captured", f"by {OWN}", "“Omakase for four, table 12”"):
        assert fact in shown, fact
    assert "Why you: Amount $450.00 is above the approval threshold of $100.00" in shown
    assert "Decide within 1 d 0 h" in shown
    # The context as written: its characters, not JSON escapes of them.
    assert '"dish": "Café crème 北京烤鸭"' in shown and '"note": "a<b"' in shown
    card = parse(page.text)
    assert card.having("li", id=authorization_id)
    assert card.having("form", action=f"/console/authorizations/{authorization_id}/approve")
    assert card.having("input", name="note") and card.having("input", name="reason")
    live_list = owner.get("/console/pending")
    assert live_list.headers["X-Pending-Count"] == "1"
    assert "<html" not in live_list.text and authorization_id in live_list.text


def test_the_keys_page_shows_a_new_secret_once(owner: Console, venue: Venue) -> None:
    created = owner.post("/console/keys", role="agent", agent_id="host-bot", name="kitchen tablet")
    assert created.status_code == 201
    [secret] = [node for node in parse(created.text).elements if node[1].get("id") == "new-key"]
    assert secret[0] == "code"
    shown = re.search(r'id="new-key">(ag_[^<]+)<', created.text)
    assert shown is not None
    key = shown.group(1)
    principal = venue.gateway.authenticate(key)
    assert (principal.role, principal.agent_id) == ("agent", "host-bot")
    assert "it is shown once" in only_text(created.text)
    for path in ("/console/keys", "/console", "/console/audit"):
        page = owner.get(path)
        assert key not in page.text and key[:20] not in page.text
    listing = only_text(owner.get("/console/keys").text)
    assert "kitchen tablet" in listing and f"{key[:11]}…" in listing
    revoked = owner.post(f"/console/keys/{principal.key_id}/revoke")
    assert revoked.status_code == 303
    with pytest.raises(GatewayError):
        venue.gateway.authenticate(key)
    assert "revoked" in only_text(owner.get("/console/keys").text)
    refused = owner.post("/console/keys", role="owner")
    assert refused.status_code == 422 and "role must be admin or agent" in only_text(refused.text)


def test_filters_of_authorizations_and_the_audit_trail(owner: Console, venue: Venue, clock: ManualClock) -> None:
    kept = pending(venue)
    venue.gateway.deny(venue.admin, kept)
    waiting = pending(venue, amount=120)
    other_agent = venue.gateway.authorize(venue.agent("host-bot"), {"action": "reservation_booked", "amount": 20})
    today = iso(clock())[:10]  # type: ignore[index]
    yesterday = iso(clock() - 24 * HOUR)[:10]  # type: ignore[index]

    def ids(path: str, **filters: str) -> set[str]:
        page = owner.get(path, **filters)
        assert page.status_code == 200, page.text
        found = re.findall(r"/console/authorizations/(auth_[A-Za-z0-9]+)", page.text)
        return set(found)

    everything = {kept, waiting, other_agent.body["authorization_id"]}
    assert ids("/console/authorizations") == everything
    assert ids("/console/authorizations", status="denied") == {kept}
    assert ids("/console/authorizations", status="pending", agent_id=OWN) == {waiting}
    assert ids("/console/authorizations", action="reservation_booked") == {other_agent.body["authorization_id"]}
    assert ids("/console/authorizations", since=today, until=today) == everything
    assert ids("/console/authorizations", until=yesterday) == set()
    assert ids("/console/audit", agent_id="host-bot") == {other_agent.body["authorization_id"]}
    assert ids("/console/audit", since=today) >= everything
    assert ids("/console/audit", until=yesterday) == set()
    for path, query, sentence in (
        (
            "/console/authorizations",
            {"since": "2026-13-01"},
            "From must be a date such as 2026-12-01, not '2026-13-01'",
        ),
        ("/console/audit", {"until": "tomorrow"}, "To must be a date such as 2026-12-01, not 'tomorrow'"),
        ("/console/authorizations", {"status": "paid"}, "status must be one of"),
    ):
        answer = owner.get(path, **query)
        assert answer.status_code == 422
        assert sentence in only_text(answer.text), only_text(answer.text)
    assert "1\u20131 of 1" in only_text(owner.get("/console/authorizations", status="denied").text)


def test_redacted_context_keys_never_reach_a_console_page(console: Console, gateway: Gateway, live: LiveServer) -> None:
    venue_id = f"v-redact-{uuid.uuid4().hex[:12]}"
    gateway.create_venue(venue_id, redacted_keys=["guest_name"])
    _, secret = gateway.create_key(Principal.operator(venue_id), role="admin")
    assert secret is not None
    venue = Venue(gateway, venue_id, gateway.authenticate(secret), secret)
    hidden = {
        "guest_name": "Ada Lovelace-7731",
        "guest_email": "ada-7731@example.com",
        "card_number": "4242424242427731",
        "Session_Token": "tok-7731-secret",
    }
    context = {**hidden, "table": 12, "items": [{"dish": "omakase", "card": "5555-7731"}]}
    asked = pending(venue, context=context)
    done = pending(venue, context=context)
    gateway.approve(venue.admin, done)
    gateway.execute(venue.agent(OWN), done, actual_amount=440, context={"receipt_email": "r-7731@example.com"})
    gateway.log_event(venue.agent(OWN), {"action": "order_captured", "amount": 5, "context": hidden})
    assert console.sign_in(secret).status_code == 303
    paths = ["/console", "/console/pending", "/console/authorizations", "/console/audit", "/console/keys"]
    paths += [f"/console/authorizations/{asked}", f"/console/authorizations/{done}"]
    for path in paths:
        page = console.get(path)
        assert page.status_code == 200
        assert "7731" not in page.text, path
    assert '"table": 12' in only_text(console.get(f"/console/authorizations/{asked}").text)
