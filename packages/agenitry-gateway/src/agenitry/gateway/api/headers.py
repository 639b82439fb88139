"""Security headers on every answer: pages, JSON, errors, and the answers middleware makes.

The public pages hold no script and take their one stylesheet from the gateway itself, so
one strict policy fits every answer: nothing loads but that stylesheet, no page can be
framed (clickjacking), a page carries no referrer away, and no browser guesses a type.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Only the gateway's own stylesheet may load; no script, frame, form, font or image.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The console's pages: forms post to the gateway, one script and the stylesheet load from it,
#: and that script may ask the gateway (and nothing else) for news.
CONSOLE_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware that adds :data:`SECURITY_HEADERS` to every HTTP answer (outermost,
    so that answers other middleware makes, a 413 for instance, carry them too). An answer
    that sets one of them itself keeps its own: the console's pages allow their forms and
    their one script (:data:`CONSOLE_CONTENT_SECURITY_POLICY`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
