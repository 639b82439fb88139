"""The owner's console in a real headless Chromium (Debian's ``chromium``), driven with
Playwright, against a real gateway on loopback (a SQLite file): an owner signs in, sees the
request a paused LangGraph run made, approves it, and the run goes on and spends once; a
second run's request appears on the open page by itself and is denied, and the run tells the
agent why. A form posted from another origin approves nothing, an agent's key cannot sign
in, sign-out ends the session for good, the pending page fits a phone, and no page breaks
its own Content-Security-Policy. The owner's own pages too: the spend chart follows the
owner's decisions, a policy is edited through its diff and dry run and saved, a webhook is
added, and spend, policies, a preview and webhooks fit a desk and a phone. A screenshot of
each page lands under the test's tmp_path.

Chromium is required: ``make test`` installs it (as root) or says how. Without it these
tests fail; they never skip.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from agenitry import Agenitry
from agenitry.gateway import Database, Gateway, Principal, create_app
from agenitry.gateway.api.console.auth import SESSION_COOKIE
from agenitry.langgraph import Gate, GatedToolNode
from support.live import LiveServer
from support.scripted import ScriptedModel
from support.venues import Venue, make_venue

AGENT = "voice-agent"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
PHONE: ViewportSize = {"width": 390, "height": 844}
#: How long to wait for the page's poll (every 5 s) to show a new request: a wait, not a measure.
POLL_WAIT_MS = 20_000


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is missing: run 'apt-get install chromium' (make test does it as root)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=FLAGS)
        yield launched
        launched.close()


@dataclass
class Site:
    """A gateway on loopback with one venue; its voice agent asks before it spends over $200."""

    gateway: Gateway
    venue: Venue
    url: str
    shots: Path
    said: list[str] = field(default_factory=list)  # what the browser's console printed

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=self.shots / f"{name}.png", full_page=True)

    def watch(self, page: Page) -> Page:
        page.on("console", lambda message: self.said.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.said.append(f"pageerror: {error}"))
        return page

    def assert_no_policy_violation(self) -> None:
        broken = [line for line in self.said if "Content Security Policy" in line or line.startswith("pageerror")]
        assert broken == [], broken

    def sign_in(self, page: Page, key: str) -> None:
        page.goto(f"{self.url}/console")
        page.fill("#key", key)
        page.click("button:has-text('Sign in')")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    database = Database("sqlite:///" + str(tmp_path / "agenitry.db"))
    database.migrate()
    gateway = Gateway(database)  # the real clock: deadlines in the page count down from it
    venue = make_venue(gateway)
    venue.policy(
        agent_id=AGENT,
        max_single_amount=1000,
        require_approval_above=200,
        allowed_actions=["order_captured", "reservation_booked"],
    )
    server = LiveServer(create_app(gateway)).start()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    yield Site(gateway, venue, server.url, shots)
    server.stop()
    database.dispose()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    yield site.watch(context.new_page())
    context.close()


# -- the agent: a LangGraph graph whose spending tool asks the gateway first ------------------------------


class Restaurant:
    """A LangGraph graph that orders through a GatedToolNode, its client talking HTTP to the gateway."""

    def __init__(self, site: Site) -> None:
        self.kitchen: list[str] = []
        self.client = Agenitry(site.venue.agent_key(AGENT), site.venue.id, agent_id=AGENT, base_url=site.url)

        @tool
        def order_food(item: str, quantity: int, total: float) -> str:
            """Send an order to the kitchen and charge the guest's card."""
            self.kitchen.append(f"{quantity} x {item}")
            return f"{quantity} x {item} sent to the kitchen, ${total:,.2f} charged."

        self.order_food = order_food

    def run(self, thread: str, item: str, quantity: int, total: float) -> tuple[Any, dict[str, Any]]:
        """Run a guest's order until the graph pauses; the graph and the pause's payload."""
        call = {"name": "order_food", "args": {"item": item, "quantity": quantity, "total": total}, "id": thread}
        model = ScriptedModel(
            messages=iter([AIMessage(content="", tool_calls=[{**call, "type": "tool_call"}]), AIMessage("Done.")])
        )

        def agent(state: MessagesState) -> dict[str, Any]:
            return {"messages": [model.invoke(state["messages"])]}

        spending = {"order_food": Gate("order_captured", amount="total", settle=True)}
        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", GatedToolNode([self.order_food], client=self.client, spending=spending))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", tools_condition)
        graph.add_edge("tools", "agent")
        compiled: Any = graph.compile(checkpointer=InMemorySaver())
        output = compiled.invoke({"messages": [("user", f"{item}, please")]}, self.config(thread), version="v2")
        [pause] = output.interrupts
        return compiled, pause.value

    @staticmethod
    def config(thread: str) -> Any:
        return {"configurable": {"thread_id": thread}}

    def resume(self, graph: Any, thread: str) -> ToolMessage:
        """Resume after the owner decided (the value is only a cue); the tool's answer."""
        output = graph.invoke(Command(resume="the owner decided"), self.config(thread), version="v2")
        assert output.interrupts == ()
        return next(m for m in reversed(output.value["messages"]) if isinstance(m, ToolMessage))


@pytest.fixture
def restaurant(site: Site) -> Iterator[Restaurant]:
    agent = Restaurant(site)
    yield agent
    agent.client.close()


# -- the story ----------------------------------------------------------------------------------------------


def test_an_owner_approves_and_denies_what_paused_agents_asked(page: Page, site: Site, restaurant: Restaurant) -> None:
    page.goto(site.url + "/")
    expect(page).to_have_url(f"{site.url}/console/login?then=/console")
    expect(page.locator("h1")).to_have_text("Sign in to the console")
    assert page.get_attribute("#key", "type") == "password"
    site.shot(page, "1-sign-in")

    graph, pause = restaurant.run("call-1", "omakase", 4, 450.0)
    first = pause["authorization_id"]
    assert (pause["status"], restaurant.kitchen) == ("pending", [])
    site.sign_in(page, site.venue.admin_key)
    expect(page).to_have_url(f"{site.url}/console")
    card = page.locator(f"#{first}")
    expect(card.locator(".amount")).to_have_text("$450.00")
    expect(card.locator(".agent")).to_have_text(f"by {AGENT}")
    expect(card.locator(".why")).to_contain_text("Amount $450.00 is above the approval threshold of $200.00")
    expect(card.locator(".left")).to_have_text(re.compile(r"^(23 h \d+ min|1 d 0 h)$"))  # of 24 h
    card.locator("summary").click()
    expect(card.locator("pre")).to_contain_text('"item": "omakase"')  # the call, as the agent made it
    site.shot(page, "2-pending")

    card.locator("input[name=note]").fill("Regulars, table 12")
    card.locator("button.approve").click()
    expect(page.locator(".notice.ok")).to_have_text(f"{first} is approved.")
    expect(page.locator(f"#{first}")).to_have_count(0)
    site.shot(page, "3-approved")

    answer = restaurant.resume(graph, "call-1")
    assert answer.content == "4 x omakase sent to the kitchen, $450.00 charged."
    assert restaurant.kitchen == ["4 x omakase"]
    record = site.gateway.get_authorization(site.venue.admin, first)
    assert (record["status"], record["decided_by"], record["note"]) == (
        "settled",
        site.venue.admin.key_id,
        "Regulars, table 12",
    )
    spent = site.gateway.list_events(site.venue.admin, site.venue.id, action="order_captured")["events"]
    assert [event["authorization_id"] for event in spent] == [first]  # executed once

    # A second run asks while the page stays open: the request appears without a reload.
    graph, pause = restaurant.run("call-2", "sake for the street", 100, 900.0)
    second = pause["authorization_id"]
    card = page.locator(f"#{second}")
    card.wait_for(timeout=POLL_WAIT_MS)
    expect(card.locator(".amount")).to_have_text("$900.00")
    expect(page).to_have_title("Pending (1) · Agenitry")
    site.shot(page, "4-new-request-appeared")
    card.locator("input[name=reason]").fill("Not on a Tuesday")
    card.locator("button.deny").click()
    expect(page.locator(".notice.ok")).to_have_text(f"{second} is denied.")
    answer = restaurant.resume(graph, "call-2")
    assert answer.status == "error" and "Not on a Tuesday" in str(answer.content)
    assert restaurant.kitchen == ["4 x omakase"]

    page.click("nav >> text=Authorizations")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("denied")
    expect(rows.nth(1)).to_contain_text("settled")
    expect(rows.nth(1)).to_contain_text("$450.00")
    site.shot(page, "5-authorizations")
    page.goto(f"{site.url}/console/authorizations/{first}")
    timeline = page.locator("ol.timeline > li strong")
    steps = ["pending", "approved", "claimed", "executed"]
    # One execute, one spend: the resumed run did not run the order twice.
    expect(timeline).to_have_text(
        [*(f"authorization.{step}" for step in steps), "order_captured", "authorization.settled"]
    )
    site.shot(page, "6-approved-timeline")
    page.goto(f"{site.url}/console/authorizations/{second}")
    expect(page.locator("dl")).to_contain_text("Not on a Tuesday")
    expect(page.locator(".status").first).to_have_text("denied")
    site.shot(page, "7-denied")
    for section in ("Audit trail", "Keys"):
        page.click(f"nav >> text={section}")
        site.shot(page, f"8-{section.lower().replace(' ', '-')}")
    expect(page.locator("tbody")).to_contain_text(AGENT)
    site.assert_no_policy_violation()


def test_news_waits_while_the_owner_types(page: Page, site: Site) -> None:
    """A new request never wipes a note being typed: the page offers the new list instead."""
    agent = site.venue.agent(AGENT)
    first = site.gateway.authorize(agent, {"action": "order_captured", "amount": 450}).body["authorization_id"]
    site.sign_in(page, site.venue.admin_key)
    note = page.locator(f"#note-{first}")
    note.fill("Checking with the chef")
    second = site.gateway.authorize(agent, {"action": "order_captured", "amount": 300}).body["authorization_id"]
    news = page.locator("#news button")
    news.wait_for(timeout=POLL_WAIT_MS)
    expect(news).to_have_text("The list changed: show it")
    expect(note).to_have_value("Checking with the chef")
    expect(page.locator(f"#{second}")).to_have_count(0)
    site.shot(page, "news-offered")
    news.click()
    expect(page.locator(f"#{second}")).to_be_visible()
    expect(page.locator("#news")).to_have_count(0)
    expect(page).to_have_title("Pending (2) · Agenitry")
    site.assert_no_policy_violation()


def test_every_state_change_works_without_javascript(browser: Browser, site: Site) -> None:
    agent = site.venue.agent(AGENT)
    asked = [
        site.gateway.authorize(agent, {"action": "order_captured", "amount": amount}).body["authorization_id"]
        for amount in (450, 300)
    ]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = site.watch(context.new_page())
        site.sign_in(page, site.venue.admin_key)
        page.locator(f"#note-{asked[0]}").fill("Fine")
        page.locator(f"#{asked[0]} button.approve").click()
        expect(page.locator(".notice.ok")).to_have_text(f"{asked[0]} is approved.")
        page.goto(f"{site.url}/console/authorizations/{asked[1]}")
        page.fill("input[name=reason]", "Too much")
        page.click("button.deny")
        expect(page.locator(".status").first).to_have_text("denied")
        page.click("nav >> text=Keys")
        page.fill("input[name=agent_id]", "host-bot")
        page.click("text=Create key")
        expect(page.locator("#new-key")).to_contain_text("ag_")
        page.locator("tbody tr", has_text="host-bot").locator("button", has_text="Revoke").click()
        expect(page.locator("tbody tr", has_text="host-bot")).to_contain_text("revoked")
        page.click("text=Sign out")
        expect(page.locator("h1")).to_have_text("Sign in to the console")
        site.shot(page, "no-javascript-signed-out")
    finally:
        context.close()
    decided = [site.gateway.get_authorization(site.venue.admin, ident)["status"] for ident in asked]
    assert decided == ["approved", "denied"]
    site.assert_no_policy_violation()


# -- as an attacker would --------------------------------------------------------------------------------------


class Elsewhere:
    """Another origin on loopback: one page whose form posts itself to the console at once."""

    def __init__(self, action: str) -> None:
        body = (
            "<!doctype html><title>Win a prize</title>"
            f'<form method="post" action="{action}"><input name="note" value="forged"></form>'
            "<script>document.forms[0].submit()</script>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_form_from_another_origin_approves_nothing(page: Page, site: Site) -> None:
    decision = site.gateway.authorize(site.venue.agent(AGENT), {"action": "order_captured", "amount": 450}).body
    authorization_id = decision["authorization_id"]
    site.sign_in(page, site.venue.admin_key)
    expect(page.locator(f"#{authorization_id}")).to_be_visible()
    elsewhere = Elsewhere(f"{site.url}/console/authorizations/{authorization_id}/approve")
    try:
        # Another port is another origin of the same site: the cookie goes along, the Origin tells.
        page.goto(f"http://127.0.0.1:{elsewhere.port}/")
        expect(page.locator(".notice.bad")).to_contain_text("did not come from a console page of your session")
        site.shot(page, "forged-same-site")
        # Another host name is another site: the SameSite=Strict cookie stays home.
        page.goto(f"http://localhost:{elsewhere.port}/")
        expect(page.locator("h1")).to_have_text("Sign in to the console")
        site.shot(page, "forged-cross-site")
    finally:
        elsewhere.close()
    assert site.gateway.get_authorization(site.venue.admin, authorization_id)["status"] == "pending"
    page.goto(f"{site.url}/console")
    expect(page.locator(f"#{authorization_id}")).to_be_visible()  # still waiting, still signed in
    site.assert_no_policy_violation()


def test_an_agent_key_cannot_sign_in(page: Page, site: Site) -> None:
    site.sign_in(page, site.venue.agent_key(AGENT))
    expect(page.locator(".notice.bad")).to_have_text(
        "This is an agent's key: an agent cannot sign in to the console. Sign in with an admin key"
        " of the venue (agenitry keys create --role admin)."
    )
    assert page.input_value("#key") == ""
    assert [c["name"] for c in page.context.cookies() if c["name"] == SESSION_COOKIE] == []
    site.shot(page, "agent-key-refused")
    site.assert_no_policy_violation()


def test_sign_out_ends_the_session_for_good(page: Page, site: Site) -> None:
    site.sign_in(page, site.venue.admin_key)
    expect(page.locator("h1")).to_have_text("Waiting for you")
    [cookie] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert cookie["expires"] > 0  # it lapses; not a cookie for ever
    kept = [c["value"] for c in page.context.cookies()] + [page.evaluate("JSON.stringify(localStorage)")]
    kept.append(page.evaluate("JSON.stringify(sessionStorage)"))
    assert not [value for value in kept if site.venue.admin_key in value]  # the key itself is nowhere
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in to the console")
    page.goto(f"{site.url}/console")
    expect(page).to_have_url(f"{site.url}/console/login?then=/console")
    with httpx.Client(base_url=site.url, cookies={SESSION_COOKIE: cookie["value"]}) as replay:
        for path in ("/console", "/console/pending", "/console/keys"):
            answer = replay.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    site.shot(page, "signed-out")
    site.assert_no_policy_violation()


# -- a phone ------------------------------------------------------------------------------------------------


def test_the_console_fits_a_phone(browser: Browser, site: Site) -> None:
    """Long words an agent or an owner may write (an agent id of 128 characters, a reason, a
    context, a venue's name) wrap or scroll inside their box: the page never scrolls sideways."""
    unbroken = "W" * 300
    venue_id = site.venue.id + "-phone"
    site.gateway.create_venue(venue_id, name="Nobo " + "Downtown" * 24)
    _, secret = site.gateway.create_key(Principal.operator(venue_id), role="admin")
    assert secret is not None
    venue = Venue(site.gateway, venue_id, site.gateway.authenticate(secret), secret)
    venue.policy(max_single_amount=1000, require_approval_above=200)
    asked = [
        site.gateway.authorize(
            venue.agent(agent_id),
            {
                "action": "order_captured",
                "amount": 450,
                "reason": "Birthday party, table 12, the tasting menu with the wine pairing " + unbroken,
                "context": {"table": 12, "note": unbroken, unbroken: [unbroken]},
            },
        ).body["authorization_id"]
        for agent_id in (AGENT, "host-" + "w" * 123)
    ]
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = site.watch(context.new_page())
        site.sign_in(page, secret)
        expect(page.locator("li.card")).to_have_count(2)
        expect(page.locator(f"#{asked[0]} .reason")).to_contain_text("Birthday party, table 12")
        for path in ("/console", f"/console/authorizations/{asked[1]}", "/console/authorizations", "/console/audit"):
            page.goto(site.url + path)
            for summary in page.locator("summary").all():
                summary.click()
            widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
            assert widths == [PHONE["width"], PHONE["width"]], (path, widths)
            site.shot(page, "phone" + path.replace("/", "-"))
        page.click("nav >> text=Keys")
        assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
        site.shot(page, "phone-keys")
        site.assert_no_policy_violation()
    finally:
        context.close()


# -- what the owner sets: spend, policies, webhooks ------------------------------------------------------------


def assert_no_sideways_scroll(page: Page, where: str) -> None:
    """The page is no wider than the window: nothing makes the body scroll sideways."""
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.body.scrollWidth, document.documentElement.clientWidth]"
    )
    assert max(widths[:2]) <= widths[2], (where, widths)


def gauge_lines(page: Page, agent_id: str) -> list[str]:
    """The text lines of the agent's 24-hour spend gauge, as the SVG draws them."""
    panel = page.locator("section.panel").filter(has=page.locator("h2", has_text=f"Agent {agent_id}"))
    return panel.locator("svg.gauge").first.locator("text").all_text_contents()


def test_the_spend_chart_follows_the_owners_decisions(page: Page, site: Site) -> None:
    site.venue.policy(agent_id=AGENT, max_daily_spend=2000)
    agent = site.venue.agent(AGENT)
    approved, denied = (
        site.gateway.authorize(agent, {"action": "order_captured", "amount": amount}).body["authorization_id"]
        for amount in (450, 300)
    )
    site.sign_in(page, site.venue.admin_key)
    page.click("nav >> text=Spend")
    expect(page.locator("h1")).to_have_text("Spend against limits")
    before = gauge_lines(page, AGENT)
    assert before == ["$750.00 of $2,000.00 in 24 hours", "$0.00 spent · $750.00 held"]

    page.click("nav >> text=Pending")
    page.locator(f"#{approved} button.approve").click()
    expect(page.locator(".notice.ok")).to_have_text(f"{approved} is approved.")
    page.locator(f"#{denied} button.deny").click()
    expect(page.locator(".notice.ok")).to_have_text(f"{denied} is denied.")
    site.gateway.execute(agent, approved, actual_amount=430)  # the agent spent a little less
    page.click("nav >> text=Spend")
    after = gauge_lines(page, AGENT)
    assert after == ["$430.00 of $2,000.00 in 24 hours", "$430.00 spent · $0.00 held"]
    venue_wide = page.locator("section.panel").first.locator("svg.gauge").first.locator("text")
    expect(venue_wide).to_have_text(["$430.00 in 24 hours · no limit", "$430.00 spent · $0.00 held"])
    assert_no_sideways_scroll(page, "spend")
    site.shot(page, "spend")
    site.assert_no_policy_violation()


def test_an_owner_edits_a_policy_through_its_preview(page: Page, site: Site) -> None:
    agent = site.venue.agent(AGENT)
    asked = [
        site.gateway.authorize(agent, {"action": "order_captured", "amount": amount}).body["status"]
        for amount in (150, 250, 450)
    ]
    assert asked == ["approved", "pending", "pending"]  # the site asks a person above $200
    site.sign_in(page, site.venue.admin_key)
    page.click("nav >> text=Policies")
    row = page.locator("tbody tr", has_text=AGENT)
    expect(row).to_contain_text("$200.00")
    assert_no_sideways_scroll(page, "policies")
    site.shot(page, "policies")

    row.locator("a", has_text="Edit").click()
    expect(page.locator("h1")).to_have_text(f"Policy of agent {AGENT}")
    expect(page.locator("textarea[name=allowed_actions]")).to_have_value("order_captured\nreservation_booked")
    page.fill("input[name=require_approval_above]", "300")
    page.fill("input[name=max_daily_spend]", "2500")
    page.click("text=Preview: diff and dry run")
    expect(page.locator(".diff li")).to_have_text(
        ["Daily limit (24 hours): no limit → $2,500.00", "Approval above: $200.00 → $300.00"]
    )
    counts = page.locator("table.dryrun tbody tr")
    expect(counts.nth(0)).to_have_text(re.compile(r"As it is\s*1\s*2\s*0"))
    expect(counts.nth(1)).to_have_text(re.compile(r"With this change\s*2\s*1\s*0"))
    expect(page.locator("main")).to_contain_text("1 request would be decided otherwise")
    assert_no_sideways_scroll(page, "preview")
    site.shot(page, "policy-preview")
    assert site.gateway.list_policies(site.venue.admin)["policies"][0]["require_approval_above"] == 200  # not yet

    page.click("text=Save this policy")
    expect(page.locator(".notice.ok")).to_have_text(f"The policy of agent {AGENT} is saved.")
    expect(page.locator("tbody tr", has_text=AGENT)).to_contain_text("$300.00")
    [policy] = site.gateway.list_policies(site.venue.admin)["policies"]
    assert (policy["require_approval_above"], policy["max_daily_spend"]) == (300, 2500)
    # The list of actions went through the preview's hidden field, line breaks and all.
    assert policy["allowed_actions"] == ["order_captured", "reservation_booked"]
    site.shot(page, "policy-saved")

    page.click("nav >> text=Webhooks")
    page.fill("input[name=url]", "https://example.com/hooks/agenitry")
    page.fill("input[name=description]", "the owner's phone")
    page.check("input[value='authorization.pending']")
    page.click("text=Add webhook")
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$"))
    assert_no_sideways_scroll(page, "webhooks")
    site.shot(page, "webhooks")
    site.assert_no_policy_violation()


def test_the_owners_pages_fit_a_phone(browser: Browser, site: Site) -> None:
    site.venue.policy(agent_id="host-" + "w" * 123, max_single_amount=5, allowed_actions=["reservation_booked"])
    site.gateway.webhooks.add(site.venue.admin, "https://example.com/hooks/" + "w" * 300, description="W" * 200)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = site.watch(context.new_page())
        site.sign_in(page, site.venue.admin_key)
        for path in ("/console/spend", "/console/policies", "/console/webhooks"):
            page.goto(site.url + path)
            assert_no_sideways_scroll(page, path)
            for summary in page.locator("summary").all():
                summary.click()
            assert_no_sideways_scroll(page, path)
            site.shot(page, "phone" + path.replace("/", "-"))
        page.goto(f"{site.url}/console/policies/edit?agent_id={AGENT}")
        page.fill("input[name=max_single_amount]", "900")
        page.click("text=Preview: diff and dry run")
        expect(page.locator(".diff li")).to_have_text(["Single-transaction limit: $1,000.00 → $900.00"])
        assert_no_sideways_scroll(page, "preview")
        site.shot(page, "phone-policy-preview")
        site.assert_no_policy_violation()
    finally:
        context.close()
