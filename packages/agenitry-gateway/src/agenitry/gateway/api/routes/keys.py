"""API keys of a venue: admin keys create, list and revoke them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import CurrentKey, GatewayDep

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=201, response_model=schemas.NewKeyOut)
def create_key(body: schemas.KeyIn, key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    """Create a key; its secret is in this answer and nowhere else."""
    record, secret = gateway.create_key(key, role=body.role, agent_id=body.agent_id, name=body.name)
    return {**record, "key": secret}


@router.get("", response_model=schemas.KeyList)
def list_keys(key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.list_keys(key)


@router.delete("/{key_id}", response_model=schemas.KeyOut)
def revoke_key(key_id: str, key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.revoke_key(key, key_id)
