"""The tables. Times are integer milliseconds since the epoch; money is integer minor units."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

#: JSON on SQLite, JSONB on PostgreSQL (so context containment can use an index there).
Json = JSON().with_variant(JSONB(), "postgresql")
Millis = BigInteger
Minor = BigInteger

venues = Table(
    "venues",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("public_context", Boolean, nullable=False, default=False),
    # The number of events appended so far: the next event's sequence number.
    Column("event_count", BigInteger, nullable=False, default=0),
    Column("created_at", Millis, nullable=False),
    # Context keys hidden on public pages besides the defaults (a JSON list, or null).
    Column("redacted_keys", Json),
    # The origin line of this venue's checkpoints, fixed by its first checkpoint.
    Column("log_origin", String(300)),
    # The size and time of the newest checkpoint, so the sweep finds venues due one cheaply.
    Column("checkpoint_size", BigInteger, nullable=False, default=0, server_default="0"),
    Column("checkpointed_at", Millis),
    # How many webhook endpoints the venue has: a decision of a venue without any writes no
    # outbox row and reads no endpoint (the venue's row is read under its lock anyway).
    Column("webhooks", Integer, nullable=False, default=0, server_default="0"),
    # Raised by every revocation of one of the venue's keys, in the revocation's transaction:
    # a write compares it with the version its cached key was read at.
    Column("keys_version", BigInteger, nullable=False, default=0, server_default="0"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("venue_id", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("agent_id", String(128)),
    Column("name", String(200)),
    Column("prefix", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", Millis, nullable=False),
    Column("revoked_at", Millis),
)

policies = Table(
    "policies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("venue_id", String(64), nullable=False),
    Column("agent_id", String(128)),
    # "" for the venue-wide policy, the agent id otherwise: one policy per scope.
    Column("scope", String(128), nullable=False),
    Column("max_single_amount", Minor),
    Column("max_daily_spend", Minor),
    Column("max_monthly_spend", Minor),
    Column("require_approval_above", Minor),
    Column("allowed_actions", Json),
    Column("created_at", Millis, nullable=False),
    Column("updated_at", Millis, nullable=False),
    UniqueConstraint("venue_id", "scope", name="uq_policies_scope"),
)

authorizations = Table(
    "authorizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("venue_id", String(64), nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Minor, nullable=False),
    Column("actual_amount", Minor),
    # What this authorization counts against the windows right now.
    Column("hold", Minor, nullable=False),
    Column("status", String(16), nullable=False),
    Column("context", Json),
    Column("reason", Text),
    Column("denial_code", String(64)),
    Column("denial_reason", Text),
    Column("message", Text),
    Column("note", Text),
    Column("created_at", Millis, nullable=False),
    Column("expires_at", Millis),
    Column("approved_at", Millis),
    Column("denied_at", Millis),
    Column("executed_at", Millis),
    Column("settled_at", Millis),
    Column("reversed_at", Millis),
    Column("expired_at", Millis),
    Column("requested_by", String(40), nullable=False),
    Column("decided_by", String(40)),
    Column("event_id", String(80)),
    Column("reversal_event_id", String(80)),
    # The claim: the SHA-256 of its token (the token itself is shown once), its holder (a
    # key id) and the end of its lease. Kept after execute, for the record.
    Column("claim_digest", String(64)),
    Column("claimed_by", String(40)),
    Column("claimed_until", Millis),
    Index("ix_authorizations_venue_created", "venue_id", "created_at"),
    Index("ix_authorizations_agent_created", "venue_id", "agent_id", "created_at"),
    Index("ix_authorizations_due", "venue_id", "status", "expires_at"),
    Index("ix_authorizations_sweep", "status", "expires_at"),
)

events = Table(
    "events",
    metadata,
    Column("venue_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("id", String(80), nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("amount", Minor),
    Column("currency", String(3)),
    Column("direction", String(16)),
    Column("context", Json),
    # Random bytes (hex) mixed into the context digest, so that a small context cannot
    # be guessed from the public digest.
    Column("context_salt", String(32)),
    Column("reason", Text),
    Column("authorization_id", String(40)),
    Column("actor", String(40), nullable=False),
    Column("created_at", Millis, nullable=False),
    # When the client logged it (its own clock), if it said: a replayed event keeps its time.
    Column("occurred_at", Millis),
    # SHA-256(0x00 || canonical entry), hex: the Merkle leaf of this event.
    Column("leaf_hash", String(64), nullable=False),
    PrimaryKeyConstraint("venue_id", "sequence", name="pk_events"),
    UniqueConstraint("venue_id", "id", name="uq_events_id"),
    Index("ix_events_venue_created", "venue_id", "created_at"),
    Index("ix_events_agent", "venue_id", "agent_id", "sequence"),
    Index("ix_events_action", "venue_id", "action", "sequence"),
)

spend_buckets = Table(
    "spend_buckets",
    metadata,
    Column("venue_id", String(64), nullable=False),
    Column("scope", String(128), nullable=False),
    Column("width", Integer, nullable=False),
    Column("start", Millis, nullable=False),
    Column("amount", Minor, nullable=False),
    PrimaryKeyConstraint("venue_id", "scope", "width", "start", name="pk_spend_buckets"),
    # The sweep's prune: the buckets no window reaches, found without reading the others.
    Index("ix_spend_buckets_start", "start"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("venue_id", String(64), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    # The first answer as JSON text: a replay returns the same bytes, keys in the same order.
    Column("body", Text, nullable=False),
    Column("created_at", Millis, nullable=False, index=True),
    PrimaryKeyConstraint("venue_id", "key", name="pk_idempotency_keys"),
)

# The Merkle tree of each venue's log (RFC 9162): node (level, node_index) is the hash of the
# perfect subtree over leaves [node_index * 2^level, (node_index + 1) * 2^level); level 0 holds
# the leaves. A node never changes once written, so roots and proofs of any size are read,
# never recomputed. Append-only: triggers refuse UPDATE and DELETE (migration 0002).
log_nodes = Table(
    "log_nodes",
    metadata,
    Column("venue_id", String(64), nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("node_index", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("venue_id", "level", "node_index", name="pk_log_nodes"),
)

# Signed checkpoints (C2SP signed notes), every one kept; ``number`` counts a venue's checkpoints.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("venue_id", String(64), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    # The signing key's Ed25519 public key, base64.
    Column("public_key", String(44), nullable=False),
    Column("signed_at", Millis, nullable=False),
    Column("note", Text, nullable=False),
    PrimaryKeyConstraint("venue_id", "number", name="pk_checkpoints"),
    Index("ix_checkpoints_size", "venue_id", "size"),
)

# Every public key that ever signed a checkpoint, so old checkpoints stay verifiable after a rotation.
log_keys = Table(
    "log_keys",
    metadata,
    Column("public_key", String(44), primary_key=True),
    Column("created_at", Millis, nullable=False),
)

# Webhook endpoints of a venue (Standard Webhooks). The secret signs every delivery, so it is
# kept as given (an HMAC key cannot be stored as a digest); a removed endpoint is kept, with
# its deliveries, for the record.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("venue_id", String(64), nullable=False, index=True),
    Column("url", Text, nullable=False),
    # "json" (the Standard Webhooks payload) or "slack" (a Slack-compatible {"text": ...}).
    Column("format", String(16), nullable=False),
    # The event types it receives (a JSON list), or null for every type.
    Column("events", Json),
    Column("description", String(200)),
    Column("secret", String(100), nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("created_by", String(40), nullable=False),
    Column("removed_at", Millis),
)

# The outbox: one message per endpoint and event, written in the transaction of the decision
# that causes it, so a message exists exactly when its cause committed. ``id`` is the
# ``webhook-id`` of every attempt; ``body`` is fixed when written, so a retry sends the same bytes.
webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("venue_id", String(64), nullable=False),
    Column("endpoint_id", String(40), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    # pending (to be sent), delivered, or failed (the retry schedule ran out).
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Millis, nullable=False),
    # An instance sending the message holds it until then (row claiming across instances).
    Column("claimed_until", Millis),
    Column("created_at", Millis, nullable=False),
    Column("delivered_at", Millis),
    Column("last_status", Integer),
    Column("last_error", Text),
    Index("ix_webhook_messages_due", "status", "next_attempt_at"),
    Index("ix_webhook_messages_endpoint", "endpoint_id", "created_at"),
)

# Every attempt at a message, for the owner to see what a receiver answered.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("message_id", String(40), nullable=False),
    Column("number", Integer, nullable=False),
    Column("attempted_at", Millis, nullable=False),
    # The receiver's HTTP status, or null when there was no answer (see ``error``).
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("message_id", "number", name="pk_webhook_attempts"),
)

# Console sign-ins: the cookie holds a random token, the table its SHA-256. A session acts as
# the admin key it signed in with (until that key is revoked) and ends at sign-out or expiry.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("venue_id", String(64), nullable=False),
    Column("key_id", String(40), nullable=False),
    # The token every form of this session carries (cross-site request forgery).
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("expires_at", Millis, nullable=False, index=True),
    Column("ended_at", Millis),
)
