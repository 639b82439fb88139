"""verifiable log: Merkle tree nodes, signed checkpoints, signing keys, append-only triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:49:37.847020

Builds the tree of the events logged before this migration, then makes events, log nodes
and checkpoints append-only: on both databases a trigger refuses UPDATE and DELETE (and
TRUNCATE on PostgreSQL), whoever asks. An owner can still drop the triggers; the signed
checkpoints are what catches that. A later migration that rebuilds one of these tables
on SQLite (batch mode copies the table) must create its triggers again.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agenitry.transparency import CompactTree

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("events", "log_nodes", "checkpoints")


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=44), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("venue_id", "number", name="pk_checkpoints"),
    )
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.create_index("ix_checkpoints_size", ["venue_id", "size"], unique=False)

    op.create_table(
        "log_keys",
        sa.Column("public_key", sa.String(length=44), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("public_key"),
    )
    op.create_table(
        "log_nodes",
        sa.Column("venue_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("node_index", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("venue_id", "level", "node_index", name="pk_log_nodes"),
    )
    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "redacted_keys",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("log_origin", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_size", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("checkpointed_at", sa.BigInteger(), nullable=True))

    _build_existing_trees()
    _append_only(op.get_context().dialect.name)


def _build_existing_trees() -> None:
    bind = op.get_bind()
    nodes = sa.table(
        "log_nodes",
        sa.column("venue_id", sa.String),
        sa.column("level", sa.SmallInteger),
        sa.column("node_index", sa.BigInteger),
        sa.column("hash", sa.LargeBinary),
    )
    venues = bind.execute(sa.text("SELECT DISTINCT venue_id FROM events")).scalars().all()
    for venue_id in venues:
        tree = CompactTree()
        batch = []
        leaves = bind.execute(
            sa.text("SELECT leaf_hash FROM events WHERE venue_id = :venue ORDER BY sequence"), {"venue": venue_id}
        ).scalars()
        for leaf in leaves:
            for level, index, digest in tree.append(bytes.fromhex(leaf)):
                batch.append({"venue_id": venue_id, "level": level, "node_index": index, "hash": digest})
            if len(batch) >= 10_000:
                bind.execute(nodes.insert(), batch)
                batch = []
        if batch:
            bind.execute(nodes.insert(), batch)


def _append_only(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION agenitry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'agenitry: % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
            END
            $$
            """
        )
        for table in APPEND_ONLY:
            for operation, scope in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}"
                    f" FOR EACH {scope} EXECUTE FUNCTION agenitry_append_only()"
                )
    else:
        for table in APPEND_ONLY:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}"
                    f" BEGIN SELECT RAISE(ABORT, 'agenitry: {table} is append-only ({operation} refused)'); END"
                )


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for table in APPEND_ONLY:
        operations = ("update", "delete", "truncate") if dialect == "postgresql" else ("update", "delete")
        for operation in operations:
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_no_{operation}" + (f" ON {table}" if dialect == "postgresql" else "")
            )
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS agenitry_append_only()")

    with op.batch_alter_table("venues", schema=None) as batch_op:
        batch_op.drop_column("checkpointed_at")
        batch_op.drop_column("checkpoint_size")
        batch_op.drop_column("log_origin")
        batch_op.drop_column("redacted_keys")

    op.drop_table("log_nodes")
    op.drop_table("log_keys")
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_checkpoints_size")

    op.drop_table("checkpoints")
