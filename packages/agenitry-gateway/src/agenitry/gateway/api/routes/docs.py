"""``/docs``: the API's operations as a plain page, drawn from ``/openapi.json``; served only
when the gateway is started with docs on.

It stands in for Swagger UI, which loads its script from a CDN: on the gateway's origin
that script would run with the gateway's authority over every page and key typed there.
This page has no script and falls under the same policy as every other page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from agenitry.gateway.api.ratelimit import limit_public
from agenitry.gateway.api.templating import templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_public)])


@router.get("/docs", response_class=HTMLResponse)
def reference(request: Request) -> HTMLResponse:
    """Every operation of /openapi.json: method, path and summary."""
    schema = request.app.openapi()
    operations = [
        {"method": method.upper(), "path": path, "summary": operation.get("summary", "")}
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]
    return templates.TemplateResponse(request, "docs.html", {"info": schema["info"], "operations": operations})
