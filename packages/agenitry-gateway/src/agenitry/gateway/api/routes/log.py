"""The venues' logs, for monitors, witnesses and auditors: checkpoints, consistency proofs, keys.

No key needed, like the verify links; each client address is rate limited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import GatewayDep
from agenitry.gateway.api.ratelimit import limit_public

router = APIRouter(tags=["log"], dependencies=[Depends(limit_public)], responses=schemas.PUBLIC_ERRORS)

TreeSize = Annotated[int, Query(ge=0, le=2**62, description="A tree size (a number of entries)")]


@router.get("/v1/log/public-key", response_model=schemas.PublicKeysOut)
def public_key(gateway: GatewayDep) -> dict[str, Any]:
    """The Ed25519 key that signs checkpoints now, and every key that ever did.

    Take the key you trust from its owner, not from here alone: this answer is only as
    trustworthy as the server that gives it."""
    return gateway.audit.public_keys()


@router.get("/v1/log/{venue_id}/checkpoint", response_model=schemas.CheckpointOut)
def checkpoint(venue_id: str, gateway: GatewayDep) -> dict[str, Any]:
    """The venue's newest signed checkpoint (C2SP tlog-checkpoint); its first is signed on demand."""
    return gateway.audit.checkpoint(venue_id)


@router.get("/v1/log/{venue_id}/consistency", response_model=schemas.ConsistencyOut)
def consistency(venue_id: str, first: TreeSize, second: TreeSize, gateway: GatewayDep) -> dict[str, Any]:
    """The RFC 9162 proof that the venue's tree of ``first`` entries is a prefix of its tree of ``second``."""
    return gateway.audit.consistency(venue_id, first, second)
