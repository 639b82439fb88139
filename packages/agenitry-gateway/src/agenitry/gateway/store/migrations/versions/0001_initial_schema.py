"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 14:42:18.674267
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_venue_id"), ["venue_id"], unique=False)

    op.create_table(
        "authorizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("actual_amount", sa.BigInteger(), nullable=True),
        sa.Column("hold", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "context", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("denial_code", sa.String(length=64), nullable=True),
        sa.Column("denial_reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("approved_at", sa.BigInteger(), nullable=True),
        sa.Column("denied_at", sa.BigInteger(), nullable=True),
        sa.Column("executed_at", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.Column("reversed_at", sa.BigInteger(), nullable=True),
        sa.Column("expired_at", sa.BigInteger(), nullable=True),
        sa.Column("requested_by", sa.String(length=40), nullable=False),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("event_id", sa.String(length=80), nullable=True),
        sa.Column("reversal_event_id", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index("ix_authorizations_agent_created", ["venue_id", "agent_id", "created_at"], unique=False)
        batch_op.create_index("ix_authorizations_due", ["venue_id", "status", "expires_at"], unique=False)
        batch_op.create_index("ix_authorizations_sweep", ["status", "expires_at"], unique=False)
        batch_op.create_index("ix_authorizations_venue_created", ["venue_id", "created_at"], unique=False)

    op.create_table(
        "events",
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column(
            "context", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("context_salt", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("authorization_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("venue_id", "sequence", name="pk_events"),
        sa.UniqueConstraint("venue_id", "id", name="uq_events_id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_action", ["venue_id", "action", "sequence"], unique=False)
        batch_op.create_index("ix_events_agent", ["venue_id", "agent_id", "sequence"], unique=False)
        batch_op.create_index("ix_events_venue_created", ["venue_id", "created_at"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("venue_id", "key", name="pk_idempotency_keys"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)

    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("max_single_amount", sa.BigInteger(), nullable=True),
        sa.Column("max_daily_spend", sa.BigInteger(), nullable=True),
        sa.Column("max_monthly_spend", sa.BigInteger(), nullable=True),
        sa.Column("require_approval_above", sa.BigInteger(), nullable=True),
        sa.Column(
            "allowed_actions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("venue_id", "scope", name="uq_policies_scope"),
    )
    op.create_table(
        "spend_buckets",
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("venue_id", "scope", "width", "start", name="pk_spend_buckets"),
    )
    op.create_table(
        "venues",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("public_context", sa.Boolean(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:

    op.drop_table("venues")
    op.drop_table("spend_buckets")
    op.drop_table("policies")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_venue_created")
        batch_op.drop_index("ix_events_agent")
        batch_op.drop_index("ix_events_action")

    op.drop_table("events")
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index("ix_authorizations_venue_created")
        batch_op.drop_index("ix_authorizations_sweep")
        batch_op.drop_index("ix_authorizations_due")
        batch_op.drop_index("ix_authorizations_agent_created")

    op.drop_table("authorizations")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_venue_id"))

    op.drop_table("api_keys")
