"""The owner's console as tests see it: an owner's browser reduced to HTTP (:class:`Console`),
pages read as a browser parses them, what an attacker writes (:data:`RED_TEAM`), and the
checks every console answer must pass (its headers, nothing injected, refused forgeries).

The fixtures ``browsers``, ``console`` and ``owner`` are found by their names once a test
module imports the functions that make them (``live_console_browsers``, ``live_console``,
``signed_in_owner``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Optional

import httpx
import pytest

from agenitry.gateway.api.console.auth import SESSION_COOKIE
from support.live import LiveServer
from support.venues import Venue

SQLITE_ONLY = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
#: Every tag the console's pages are made of: anything else on a page was injected.
CONSOLE_TAGS = {
    *"html head meta title link script body header div strong span nav a form input button main".split(),
    *"h1 h2 p ul ol li code details summary pre label select option table thead tbody tr th td dl dt dd".split(),
    *"br section textarea fieldset legend del ins".split(),
    *"svg g rect line text".split(),  # the spend charts, drawn by the gateway
}
#: Where the pages may link off the console: the public verify pages (the fixture's public_url).
VERIFY_LINKS = "https://verify.example/verify/"
#: What an agent or a careless owner might write, each marked "pwned" so an injection is easy to spot.
RED_TEAM = {
    "script element": "<script>alert('pwned')</script>",
    "attribute break-out": '"><img src=x onerror=alert(1) class=pwned>',
    "single-quoted break-out": "'><svg/onload=alert(1) class='pwned'>",
    "javascript: URL": "javascript:alert('pwned')",
    "template expressions": "{{7*7}} {% if 1 %}pwned{% endif %} ${7*7} #{7*7}",
    "unicode bidi": "\u202etxt.exe\u202c pwned \u2066isolate\u2069",
    "very long": "pwned" + "W" * 1995,
}


# -- reading pages ----------------------------------------------------------------------------------


@dataclass
class Form:
    """A form of a page and what a browser would post with it: each named input (a checkbox
    only when ticked), each textarea's text and each select's chosen option, in page order."""

    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)

    def posted(self) -> dict[str, Any]:
        """The fields as :meth:`Console.submit` takes them: a name repeated gives a list."""
        data: dict[str, Any] = {}
        for name, value in self.fields:
            if name in data:
                data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
            else:
                data[name] = value
        return data


@dataclass
class Html:
    """A page as a browser parses it: its elements (tag and attributes), its text and its forms."""

    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def values(self, name: str) -> list[str]:
        """The values of the inputs called ``name``."""
        return [attrs.get("value", "") for tag, attrs in self.elements if tag == "input" and attrs.get("name") == name]

    def value(self, name: str) -> str:
        found = self.values(name)
        assert found, f"the page has no input called {name}"
        return found[0]

    def having(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def form(self, action: str) -> Form:
        """The one form of the page that posts to ``action``."""
        [found] = [form for form in self.forms if form.action == action]
        return found


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Html()
        self._form: Optional[Form] = None
        self._textarea: Optional[tuple[str, list[str]]] = None
        self._select: Optional[tuple[str, list[tuple[str, bool]]]] = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        named = {name: value or "" for name, value in attrs}
        self.page.elements.append((tag, named))
        if tag == "form":
            self._form = Form(named.get("action", ""))
            self.page.forms.append(self._form)
        elif self._form is None or ("name" not in named and tag != "option"):
            return  # outside a form, or nothing it would post
        elif tag == "input" and (named.get("type") not in ("checkbox", "radio") or "checked" in named):
            self._form.fields.append((named["name"], named.get("value", "")))
        elif tag == "textarea":
            self._textarea = (named["name"], [])
        elif tag == "select":
            self._select = (named["name"], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((named.get("value", ""), "selected" in named))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            # A browser drops the newline that follows <textarea>.
            self._form.fields.append((self._textarea[0], "".join(self._textarea[1]).removeprefix("\n")))
            self._textarea = None
        elif tag == "select" and self._select is not None and self._form is not None:
            name, options = self._select
            chosen = [value for value, selected in options if selected] or [value for value, _ in options[:1]]
            self._form.fields += [(name, value) for value in chosen[:1]]
            self._select = None

    def handle_data(self, data: str) -> None:
        self.page.chunks.append(data)
        if self._textarea is not None:
            self._textarea[1].append(data)


def parse(html: str) -> Html:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


def assert_nothing_injected(html: str) -> Html:
    """No element, attribute, handler or URL on the page that the console's templates do not make."""
    page = parse(html)
    tags = {tag for tag, _ in page.elements}
    assert tags <= CONSOLE_TAGS, f"injected elements: {tags - CONSOLE_TAGS}"
    scripts = [attrs.get("src") for tag, attrs in page.elements if tag == "script"]
    assert scripts in ([], ["/static/console.js"]), scripts  # the one script (a list the page swaps in has none)
    for tag, attrs in page.elements:
        assert not [name for name in attrs if name.startswith("on")], f"an event handler on <{tag}>: {attrs}"
        assert "pwned" not in attrs.get("class", ""), f"an injected <{tag}>: {attrs}"
        for name in ("href", "src", "action", "formaction"):
            target = re.sub(r"\s", "", attrs.get(name, "")).lower()
            if target.startswith(VERIFY_LINKS):  # the gateway's public verify pages
                continue
            assert not target.startswith(("javascript:", "data:", "//", "http")), f"<{tag} {name}={target}>"
    return page


def only_text(html: str) -> str:
    """The page's text, its text nodes apart and whitespace runs made one space, as a person reads it."""
    return " ".join(" ".join(parse(html).chunks).split())


def shown_literally(html: str, text: str) -> None:
    page = assert_nothing_injected(html)
    assert text in page.text, f"{text[:40]!r} is not shown as written"


# -- what every console answer must be ---------------------------------------------------------------


def assert_console_headers(answer: httpx.Response) -> None:
    policy = dict(
        [*part.strip().split(" ", 1), ""][:2] for part in answer.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'" and policy["form-action"] == "'self'"
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert not re.search(r"unsafe|https?:|\*|data:", answer.headers["Content-Security-Policy"])
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    # The console's own origin only: its forms must name it, and no address leaves the gateway.
    assert answer.headers["Referrer-Policy"] == "same-origin"


def refused_form(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert "did not come from a console page of your session" in only_text(answer.text)
    assert "csrf_failed" in answer.text


# -- an owner's browser, reduced to HTTP -------------------------------------------------------------


class Console:
    """Cookies, the forms' hidden tokens and the ``Origin`` a browser sends with a form; redirects
    are not followed, so each answer is seen as the gateway gave it."""

    def __init__(self, live: LiveServer, **options: Any) -> None:
        self.origin = live.url
        self.http = httpx.Client(base_url=live.url, timeout=10, **options)

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params) if params else self.http.get(path)

    def sign_in(self, key: str, *, then: Optional[str] = None) -> httpx.Response:
        form = parse(self.http.get("/console/login", params={"then": then} if then else {}).text)
        fields = {"token": form.value("token"), "then": form.value("then"), "key": key}
        return self.http.post("/console/login", data=fields, headers={"Origin": self.origin})

    def csrf_token(self) -> str:
        page = self.get("/console")
        assert page.status_code == 200, page.headers.get("location")
        return parse(page.text).value("csrf_token")

    def post(
        self, path: str, csrf_token: Optional[str] = "", *, headers: Optional[dict[str, str]] = None, **fields: str
    ) -> httpx.Response:
        """Post a console form: with this session's form token unless another (or None) is given."""
        return self.submit(path, fields, csrf_token, headers)

    def submit(
        self,
        path: str,
        fields: dict[str, Any],
        csrf_token: Optional[str] = "",
        headers: Optional[dict[str, str]] = None,
    ) -> httpx.Response:
        """Post ``fields`` (a list value is a field repeated, as checkboxes of one name send it)."""
        if csrf_token == "":
            csrf_token = self.csrf_token()
        data = {**fields, **({"csrf_token": csrf_token} if csrf_token is not None else {})}
        return self.http.post(path, data=data, headers={"Origin": self.origin, **(headers or {})})

    def approve(self, authorization_id: str, csrf_token: Optional[str] = "", **fields: str) -> httpx.Response:
        return self.submit(f"/console/authorizations/{authorization_id}/approve", fields, csrf_token)

    def deny(self, authorization_id: str, csrf_token: Optional[str] = "", **fields: str) -> httpx.Response:
        return self.submit(f"/console/authorizations/{authorization_id}/deny", fields, csrf_token)

    @property
    def session_cookie(self) -> Optional[str]:
        return self.http.cookies.get(SESSION_COOKIE)


@pytest.fixture(name="browsers")
def live_console_browsers(live: LiveServer) -> Iterator[Callable[..., Console]]:
    """``browsers(**httpx_options)``: another browser of the live console (closed after the test)."""
    opened: list[Console] = []

    def open_one(**options: Any) -> Console:
        opened.append(Console(live, **options))
        return opened[-1]

    yield open_one
    for browser in opened:
        browser.http.close()


@pytest.fixture(name="console")
def live_console(browsers: Callable[..., Console]) -> Console:
    """A browser of the live console, not signed in."""
    return browsers()


@pytest.fixture(name="owner")
def signed_in_owner(console: Console, venue: Venue) -> Console:
    """The console, signed in with the venue's admin key."""
    assert console.sign_in(venue.admin_key).status_code == 303
    return console
