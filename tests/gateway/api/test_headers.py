"""Security headers on every answer, over real HTTP: a strict Content-Security-Policy that
allows only the gateway's own stylesheet, no framing, no type sniffing, no referrer. The
public pages need nothing else. ``/docs`` is off by default; on, it is a plain page of the
API's operations that loads nothing from another origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from agenitry.gateway import Gateway, Settings, create_app
from support.live import LiveServer
from support.venues import Venue


def assert_secured(answer: httpx.Response) -> None:
    policy = dict(
        [*part.split(" ", 1), ""][:2]
        for part in (p.strip() for p in answer.headers["Content-Security-Policy"].split(";"))
    )
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["style-src"] == "'self'"
    assert "script-src" not in policy  # falls back to default-src 'none': no script at all
    assert not re.search(r"https?:|\*|unsafe", answer.headers["Content-Security-Policy"])
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def assert_loads_only_its_own_stylesheet(html: str) -> None:
    assert "<script" not in html.lower() and "style=" not in html and "<style" not in html
    assert re.findall(r'<link[^>]*href="([^"]+)"', html) == ["/static/agenitry.css"]
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_the_verify_page_and_the_not_found_page_carry_the_headers(http: httpx.Client, venue: Venue) -> None:
    event = venue.gateway.log_event(venue.admin, {"action": "order_captured", "amount": 12}).body
    for path, status in ((f"/verify/{venue.id}/{event['id']}", 200), (f"/verify/{venue.id}/evt_missing", 404)):
        page = http.get(path)
        assert page.status_code == status
        assert page.headers["content-type"].startswith("text/html")
        assert_secured(page)
        assert_loads_only_its_own_stylesheet(page.text)


def test_the_stylesheet_the_pages_use_is_served_by_the_gateway(http: httpx.Client) -> None:
    sheet = http.get("/static/agenitry.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert ".verdict.ok" in sheet.text
    assert_secured(sheet)


def test_json_answers_and_errors_carry_the_headers(http: httpx.Client, venue: Venue) -> None:
    keyed = {"Authorization": f"Bearer {venue.admin_key}"}
    answers = [
        http.get("/healthz"),
        http.get("/openapi.json"),
        http.get("/v1/policies", headers=keyed),
        http.get("/v1/policies", headers={"Authorization": "Bearer ag_wrong"}),  # 401 from the key check
        http.post("/v1/events", content=b"x" * 2_000_000, headers=keyed),  # 413 from the body limit
        http.get("/no/such/route"),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 401, 413, 404]
    for answer in answers:
        assert_secured(answer)


def test_docs_are_off_by_default(http: httpx.Client) -> None:
    assert http.get("/docs").status_code == 404
    assert http.get("/redoc").status_code == 404
    assert http.get("/openapi.json").status_code == 200
    assert Settings().api_docs is False


@pytest.fixture
def with_docs(gateway: Gateway) -> Iterator[httpx.Client]:
    server = LiveServer(create_app(gateway, api_docs=True)).start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_docs_when_on_list_the_operations_and_load_no_other_origin(with_docs: httpx.Client) -> None:
    page = with_docs.get("/docs")
    assert page.status_code == 200
    assert_secured(page)
    assert_loads_only_its_own_stylesheet(page.text)
    assert 'href="/openapi.json"' in page.text
    for operation in ("<code>POST</code></td><td><code>/v1/authorize</code>", "<code>/v1/events/batch</code>"):
        assert operation in page.text
    assert "/docs" not in with_docs.get("/openapi.json").json()["paths"]


def test_docs_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENITRY_API_DOCS", "true")
    assert Settings.from_env().api_docs is True
    monkeypatch.setenv("AGENITRY_API_DOCS", "maybe")
    with pytest.raises(ValueError, match="AGENITRY_API_DOCS='maybe' is not a valid bool"):
        Settings.from_env()
