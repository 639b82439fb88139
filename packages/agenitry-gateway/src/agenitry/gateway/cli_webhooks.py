"""``agenitry webhooks``: a venue's webhook endpoints, and what was sent to them.

The commands act as the venue's owner on the database (``Principal.operator``), as the
``keys`` commands do. They write to the outbox; a running ``agenitry serve`` on the same
database sends what they leave due, within its poll interval (a second).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from agenitry.gateway.cli_options import AsJson, Db, Venue, problem
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.webhooks import EVENT_TYPES

#: ``open_gateway(db, venue=...)``: the gateway on the command's database, the venue checked.
OpenGateway = Callable[..., Gateway]
#: ``fail(error)``: the service's refusal as one line and the command's exit.
Fail = Callable[[GatewayError], typer.Exit]


def webhooks_app(open_gateway: OpenGateway, fail: Fail, **settings: Any) -> typer.Typer:
    """The ``webhooks`` command group, on the main app's way of opening the database and failing."""
    group = typer.Typer(help="Send decisions to your own URL or a chat channel, signed.", **settings)

    @group.command("add")
    def add(
        venue: Venue,
        url: Annotated[str, typer.Option(help="Where to POST each message (http or https)")],
        event: Annotated[
            Optional[list[str]],
            typer.Option("--event", help="An event type to send (repeatable); none given: every type"),
        ] = None,
        events: Annotated[
            Optional[str], typer.Option(help="Event types to send, comma-separated, such as authorization.pending")
        ] = None,
        format: Annotated[
            str, typer.Option("--format", help="json (signed payload) or slack (a channel message)")
        ] = "json",
        description: Annotated[Optional[str], typer.Option(help="A label for the endpoint")] = None,
        db: Db = None,
        as_json: AsJson = False,
    ) -> None:
        """Add an endpoint and print its signing secret. It is shown this once."""
        types = [*(event or []), *(name.strip() for name in (events or "").split(",") if name.strip())]
        if events is not None and not types:
            raise problem("--events names no event type", f"known types: {', '.join(EVENT_TYPES)}")
        try:
            record, secret = open_gateway(db, venue=venue).webhooks.add(
                Principal.operator(venue), url, events=types or None, format=format, description=description
            )
        except GatewayError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json({**record, "secret": secret})
            return
        typer.echo(secret)
        sent = ", ".join(record["events"]) if record["events"] else "every event type"
        typer.echo(
            f"Webhook {record['id']} sends {sent} to {record['url']} as {record['format']}."
            " Store the secret now (receivers verify with it): it is not shown again.",
            err=True,
        )

    @group.command("list")
    def list_(venue: Venue, db: Db = None, as_json: AsJson = False) -> None:
        """List a venue's endpoints, removed ones too."""
        try:
            endpoints = open_gateway(db, venue=venue).webhooks.list(Principal.operator(venue))["webhooks"]
        except GatewayError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json(endpoints)
            return
        for item in endpoints:
            state = f"removed {item['removed_at']}" if item["removed_at"] else "active"
            sent = ",".join(item["events"]) if item["events"] else "all events"
            typer.echo(f"{item['id']}  {state:<32} {item['format']:<5}  {sent}  {item['url']}")

    @group.command("remove")
    def remove(webhook_id: str, venue: Venue, db: Db = None) -> None:
        """Remove an endpoint: nothing more is sent to it; its unsent messages are failed."""
        try:
            open_gateway(db, venue=venue).webhooks.remove(Principal.operator(venue), webhook_id)
        except GatewayError as exc:
            raise fail(exc) from None
        typer.echo(f"Removed {webhook_id}.")

    @group.command("deliveries")
    def deliveries(
        webhook_id: str,
        venue: Venue,
        limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
        db: Db = None,
        as_json: AsJson = False,
    ) -> None:
        """An endpoint's newest messages: status, attempts and the receiver's last answer."""
        try:
            page = open_gateway(db, venue=venue).webhooks.deliveries(Principal.operator(venue), webhook_id, limit)
        except GatewayError as exc:
            raise fail(exc) from None
        if as_json:
            _print_json(page)
            return
        for item in page["deliveries"]:
            answer = item["last_error"] or (f"HTTP {item['last_status']}" if item["last_status"] else "-")
            due = f" next {item['next_attempt_at']}" if item["next_attempt_at"] else ""
            typer.echo(
                f"{item['id']}  {item['event_type']:<22} {item['status']:<9} {item['attempt_count']} attempt(s)"
                f"  {answer}{due}"
            )

    @group.command("retry")
    def retry(message_id: str, venue: Venue, db: Db = None) -> None:
        """Send a pending or failed message again, with the same webhook-id."""
        try:
            message = open_gateway(db, venue=venue).webhooks.retry(Principal.operator(venue), message_id).body
        except GatewayError as exc:
            raise fail(exc) from None
        typer.echo(f"{message['id']} is due now; a running agenitry serve sends it within a second.")

    return group


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))
