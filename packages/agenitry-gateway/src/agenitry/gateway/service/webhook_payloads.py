"""What a webhook message says: the Standard Webhooks JSON payload, or a sentence for a channel.

A message's body is rendered once, in the transaction of its cause, from the event the log
appended and the authorization as that transaction leaves it; it never changes afterwards.
A caller's words (a reason, a denial) reach a Slack message escaped, so they cannot
mention a channel or make a link.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from agenitry.gateway._clock import iso
from agenitry.gateway._money import display
from agenitry.gateway.service import inputs, records
from agenitry.gateway.service.audit import redact, redacted_keys
from agenitry.gateway.service.events import ALL_AGENTS


def _compact(value: Any) -> str:
    # ASCII only: the signed string and the bytes sent are then the same in any encoding.
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


@dataclass(frozen=True)
class Cause:
    """One appended event that endpoints receive, with what its payloads show."""

    event: dict[str, Any]
    venue: Any
    public_url: str
    #: The authorization of an ``authorization.*`` event, as the transaction leaves it.
    authorization: Any = None

    @property
    def type(self) -> str:
        return str(self.event["action"])

    def log_entry(self) -> dict[str, Any]:
        venue_id, event_id = self.venue.id, self.event["id"]
        return {
            "id": event_id,
            "sequence": self.event["sequence"],
            "actor": self.event["actor"],
            "verify_url": records.verify_url(self.public_url, venue_id, event_id),
        }

    def console_url(self) -> str:
        if self.authorization is not None:
            return f"{self.public_url}/console/authorizations/{self.authorization.id}"
        return f"{self.public_url}/console/policies"

    def body(self, format: str) -> str:
        if format == "slack":
            return _compact({"text": self.sentence()})
        return _compact({"type": self.type, "timestamp": iso(self.event["created_at"]), "data": self.data()})

    def data(self) -> dict[str, Any]:
        if self.authorization is None:
            agent_id = self.event["agent_id"]
            return {
                "venue_id": self.venue.id,
                "agent_id": None if agent_id == ALL_AGENTS else agent_id,
                "policy": self.event["context"],
                "console_url": self.console_url(),
                "event": self.log_entry(),
            }
        record = records.authorization(self.authorization)
        if record["context"] is not None:
            record["context"] = redact(record["context"], redacted_keys(self.venue))
        data: dict[str, Any] = {
            "authorization": record,
            "console_url": self.console_url(),
            "event": self.log_entry(),
        }
        if self.type == "authorization.pending":
            # Why it waits for a person, and until when: what the person reads first.
            data["message"] = self.authorization.message
            data["expires_at"] = iso(self.authorization.expires_at)
        return data

    def sentence(self) -> str:
        """What a person reads in a channel: one or two sentences and the console link."""
        if self.authorization is None:
            return f"{self._policy_sentence()} {self.console_url()}"
        row = self.authorization
        agent, action = _escaped(row.agent_id), _escaped(row.action)
        amount = display(row.amount, row.currency)
        spent = display(row.actual_amount if row.actual_amount is not None else row.amount, row.currency)
        by = _who(self.event["actor"])
        status = self.type.removeprefix("authorization.")
        if status == "pending":
            why = f": {_escaped(row.reason)}" if row.reason else ""
            text = (
                f"Agent {agent} asks to spend {amount} on {action}{why}. {_sentence(row.message)}"
                f" Decide before {_when(row.expires_at)}:"
            )
        elif status == "approved":
            by = "by policy" if row.decided_by == "policy" else f"by {by}"
            text = f"Approved {by}: agent {agent} may spend {amount} on {action} until {_when(row.expires_at)}."
        elif status == "denied":
            text = f"Denied: agent {agent} asked to spend {amount} on {action}. {_sentence(row.denial_reason)}"
        elif status == "expired" and row.approved_at is None:
            text = f"Expired without a decision: agent {agent} asked to spend {amount} on {action}."
        elif status == "expired":
            text = f"Expired unused: agent {agent} was approved to spend {amount} on {action} and did not."
        elif status == "executed":
            of = f" (of {amount} approved)" if spent != amount else ""
            text = f"Executed: agent {agent} spent {spent}{of} on {action}."
        elif status == "settled":
            text = f"Settled: agent {agent} spent {spent} on {action}."
        elif row.executed_at is not None:
            text = f"Reversed by {by}: the {spent} agent {agent} spent on {action} is given back."
        else:
            text = f"Reversed by {by}: agent {agent} will not spend the {amount} approved for {action}."
        return f"{text} {self.console_url()}"

    def _policy_sentence(self) -> str:
        agent_id = self.event["agent_id"]
        scope = "The venue-wide policy" if agent_id == ALL_AGENTS else f"The policy of agent {_escaped(agent_id)}"
        by = _who(self.event["actor"])
        if self.type == "policy.deleted":
            return f"{scope} was deleted by {by}."
        details = self.event["context"] or {}
        currency = self.venue.currency
        limits = [
            shown.format(display(inputs.amount(Decimal(str(details[name])), currency), currency))
            for name, shown in _LIMITS_SHOWN
            if details.get(name) is not None
        ]
        allowed = details.get("allowed_actions")
        if allowed is not None:
            limits.append("actions " + ", ".join(_escaped(name) for name in allowed))
        return f"{scope} was updated by {by}: {'; '.join(limits) or 'no limits'}."


_LIMITS_SHOWN = (
    ("max_single_amount", "at most {} at once"),
    ("max_daily_spend", "{} a day"),
    ("max_monthly_spend", "{} in 30 days"),
    ("require_approval_above", "approval above {}"),
)


def _escaped(text: str) -> str:
    """Text as a Slack message shows it literally: no link, mention or markup from a caller's words."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sentence(text: Optional[str]) -> str:
    if not text:
        return ""
    text = _escaped(text)
    return text if text.endswith((".", "!", "?")) else text + "."


def _when(ms: Optional[int]) -> str:
    shown = iso(ms)
    return f"{shown[:10]} {shown[11:16]} UTC" if shown else "-"


def _who(actor: str) -> str:
    return "the owner (CLI)" if actor == "cli" else f"key {actor}"
