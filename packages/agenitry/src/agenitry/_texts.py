"""What a model reads about a gated call: one sentence per outcome kind, shared by every adapter.

Each sentence is true of what happened: it names the authorization when there is one,
quotes the gateway's reason for a refusal, and says whether anything ran or was spent.
It never prints a missing value ("None") and never says "go ahead" for something done.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Optional, Union

from agenitry._models import Authorization

_MAX_ERROR = 1024


def _what(authorization: Authorization) -> str:
    action = authorization.action or "the spend"
    return f"{action} of {authorization.money}" if authorization.money else action


def describe_error(error: Union[BaseException, str, None]) -> Optional[str]:
    """An exception as one bounded line: ``"RuntimeError: supplier API is down"``."""
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + "…"


def ran_text(authorization: Authorization) -> str:
    """The call ran and its authorization was executed."""
    return f"Done: {_what(authorization)} under authorization {authorization.id}."


def approved_text(authorization: Authorization) -> str:
    """The gateway approved; nothing has run yet."""
    return f"Approved: {_what(authorization)} (authorization {authorization.id}); nothing has run yet."


def denied_text(authorization: Authorization) -> str:
    """Refused by the policy or the owner, expired or reversed: the gateway's reason, if it gave one."""
    reason = authorization.reason
    if reason is None:
        reason = {
            "expired": "the authorization expired before it was used",
            "reversed": "the authorization was reversed",
        }.get(authorization.status, "the spending policy refused it")
    return (
        f"Not authorized ({authorization.status}): {reason}. Nothing was done "
        f"(authorization {authorization.id}). Do not retry this spend."
    )


def pending_text(authorization: Authorization) -> str:
    """Waiting for the owner's decision."""
    return (
        f"Waiting for the owner's approval: {_what(authorization)} (authorization {authorization.id}). "
        "Nothing was done yet; do not ask again, tell the user it needs approval."
    )


def already_done_text(authorization: Authorization) -> str:
    """This very call already ran under its authorization."""
    return (
        f"Already done: this call was carried out under authorization {authorization.id} "
        f"({authorization.status}); it is not repeated."
    )


def in_progress_text(authorization: Authorization) -> str:
    """Another run holds the claim and is running the call now."""
    return (
        f"Already under way: another run is carrying out this call under authorization {authorization.id}; "
        "it is not repeated here."
    )


def failed_text(tool: str, error: Union[BaseException, str], authorization: Authorization, released: bool) -> str:
    """The body raised; ``released``: whether the authorization's hold was given back."""
    if released:
        after = f"Authorization {authorization.id} was released; nothing was spent."
    else:
        after = f"Releasing authorization {authorization.id} failed; its hold lapses when it expires."
    return f"{tool} failed: {describe_error(error)}. {after}"


def invalid_text(tool: str, error: Union[BaseException, str]) -> str:
    """The call's amount or arguments are wrong; nothing was authorized."""
    text = error if isinstance(error, str) else str(error)
    return f"{tool} was not run: {text}. Nothing was authorized; call it again with corrected arguments."


def unavailable_text(tool: str, error: Union[BaseException, str]) -> str:
    """The gateway could not be reached, so nothing ran."""
    text = error if isinstance(error, str) else str(error)
    return f"{tool} was not run: the spending gateway could not be reached ({text}). Nothing was spent."


# -- the answers of the seed's tools (authorize, log an event, set a policy) ----------------------


def decision_text(authorization: Authorization) -> str:
    """What an authorize tool answers, from the authorization's record: the decision first.

    ``APPROVED: order_captured of 127.00 USD for voice-agent may go ahead (authorization auth_…,
    valid until …).``, or ``PENDING: …`` / ``DENIED: …`` with :func:`pending_text` / :func:`denied_text`.
    """
    if authorization.status == "approved":
        who = f" for {authorization.agent_id}" if authorization.agent_id else ""
        until = f", valid until {authorization.expires_at}" if authorization.expires_at else ""
        return f"APPROVED: {_what(authorization)}{who} may go ahead (authorization {authorization.id}{until})."
    if authorization.status == "pending":
        return f"PENDING: {pending_text(authorization)}"
    return f"DENIED: {denied_text(authorization)}"


def logged_text(action: str, event: Mapping[str, Any]) -> str:
    """What a log tool answers: the event's id and, when the gateway gave one, its verify link."""
    link = event.get("verify_url")
    where = f"; anyone with this link can verify it: {link}" if link else ""
    return f"Logged {action} as event {event.get('id')}{where}."


#: A policy's limits as a sentence names them, in the order the checks run.
_LIMITS = (
    ("max_single_amount", "at most {} a spend"),
    ("max_daily_spend", "at most {} in any 24 hours"),
    ("max_monthly_spend", "at most {} in any 30 days"),
    ("require_approval_above", "the owner approves anything above {}"),
)


def _number(value: Any) -> str:
    """A limit as the gateway sent it (a JSON number), without float noise: ``300``, ``12.5``."""
    return f"{Decimal(str(value)).normalize():f}"


def policy_text(policy: Mapping[str, Any]) -> str:
    """What a set-policy tool answers: the policy as saved, every limit it now has."""
    scope = f"agent {policy['agent_id']}" if policy.get("agent_id") else "the whole venue"
    rules = [sentence.format(_number(policy[name])) for name, sentence in _LIMITS if policy.get(name) is not None]
    actions = policy.get("allowed_actions")
    if actions is not None:
        rules.append("only " + ", ".join(actions) if actions else "no action allowed")
    return f"Policy {policy.get('id')} saved for {scope}: {'; '.join(rules) or 'no limits'}."
