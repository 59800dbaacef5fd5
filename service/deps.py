"""What the routes take from the app: its settings, its engine and its decoding threads.

Plain functions called by the routes rather than FastAPI dependencies: resolving
dependencies costs FastAPI tens of microseconds per request, a real share of a
request that is otherwise a batched forward pass and a small PNG.
"""

from __future__ import annotations

import anyio
from fastapi import Request

from service.engine import Engine
from service.errors import Overloaded
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The running engine (503 while the models are not loaded, e.g. during shutdown)."""
    engine = request.app.state.engine
    if engine is None:
        retry = str(request.app.state.settings.retry_after_s)
        raise Overloaded("the models are not loaded yet; retry shortly", headers={"Retry-After": retry})
    return engine


def get_decoders(request: Request) -> anyio.CapacityLimiter | None:
    """The limit on large uploads decoded at once (set with the engine at startup)."""
    return getattr(request.app.state, "decoders", None)
