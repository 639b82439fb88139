"""A stolen database yields no usable key: only a digest of each key is stored, anywhere."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from agenitry.gateway.service.gateway import Idempotency
from agenitry.gateway.store.schema import api_keys, metadata
from support.venues import Venue


def test_no_table_holds_a_key_only_its_digest(venue: Venue) -> None:
    gateway = venue.gateway
    # Created under an Idempotency-Key, so its answer is stored for replays too.
    body = {"role": "agent", "agent_id": "till"}
    once = Idempotency.of("create-till", venue.admin, "POST", "/v1/keys", body)
    principal, secret = gateway.create_key(venue.admin, role="agent", agent_id="till", idempotency=once)
    assert secret is not None
    assert gateway.authenticate(secret).key_id == principal["id"]
    with gateway.db.read() as conn:
        dump = repr([conn.execute(select(table)).all() for table in metadata.sorted_tables])
        [row] = conn.execute(select(api_keys).where(api_keys.c.id == principal["id"])).all()
    assert secret not in dump
    assert secret[len(row.prefix) :] not in dump
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest()
