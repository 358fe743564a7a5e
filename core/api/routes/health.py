"""Liveness for load balancers and uptime checks."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from core.api.schemas import ErrorOut, HealthOut
from data import db

router = APIRouter(tags=["health"])
log = logging.getLogger("stemforge.health")


@router.get("/health", response_model=HealthOut, responses={503: {"model": ErrorOut}})
async def health() -> dict | JSONResponse:
    """Public. 200 when the server answers and its database is reachable, 503 otherwise."""
    try:
        await db.ping()
    except Exception as exc:  # any failure to reach the database means "not healthy"
        log.warning("health check: database unreachable: %s", exc)
        return JSONResponse(
            {"error": "database unreachable", "code": "service_unavailable"}, status_code=503
        )
    return {"status": "ok"}
