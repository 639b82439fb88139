"""The standalone verifier, for anyone to download: ``GET /agenitry-verify.py``.

No key needed; each client address is rate limited like the verify links. The file is
text for Python to run, never for a browser: with the security headers' ``nosniff`` a
browser shows it and runs nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from agenitry.gateway.api import schemas
from agenitry.gateway.api.ratelimit import limit_public
from agenitry.gateway.verify_bundle import standalone_verifier

router = APIRouter(tags=["public"], dependencies=[Depends(limit_public)])


@router.get(
    "/agenitry-verify.py",
    response_class=Response,
    responses={200: {"content": {"text/x-python": {}}}, 429: schemas.PUBLIC_ERRORS[429]},
)
def verifier() -> Response:
    """One Python file (3.9+, standard library only) that checks a ``.tlog-proof``, a verify
    link or an export offline, as ``agenitry verify`` does: ``python3 agenitry-verify.py
    EVENT.tlog-proof --key PUBLIC_KEY``."""
    return Response(standalone_verifier(), media_type="text/x-python")
