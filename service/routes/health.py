"""Probes and metrics: GET /healthz, /readyz and /metrics (never behind the API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.errors import error_body
from service.schemas import ErrorResponse, StatusResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=StatusResponse)
async def healthz() -> StatusResponse:
    return StatusResponse(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: models loaded and warmed up",
    response_model=StatusResponse,
    responses={503: {"model": ErrorResponse, "description": "Starting (loading, warming up) or stopping."}},
)
async def readyz(request: Request) -> Response:
    if request.app.state.ready:
        return JSONResponse({"status": "ready"})
    detail = request.app.state.not_ready_reason
    return JSONResponse(error_body("not_ready", detail), status_code=503, headers={"Retry-After": "1"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format."}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
