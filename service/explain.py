"""The service's GradCAM workers for POST /explain (the maps themselves are models.gradcam's).

GradCAM needs gradients, so it cannot share the engine's batchers,
which run in ``torch.inference_mode``; and captum registers hooks on the layer, which
would fire on the batchers' forward passes if it used the served modules. So each
worker uses its own copy of the network (made on first use, reused after), in
anyio's worker threads under a small ``CapacityLimiter``; a bounded number of
requests may wait for one, beyond which the answer is 503 with Retry-After, as
for the engine's queues. Each GradCAM pass holds one of the compute slots it shares
with the batchers (service.resources), so explanations never add threads beyond the
CPU budget: they wait for a slot instead.
"""

from __future__ import annotations

import base64
import copy
import logging
import queue
import threading
from dataclasses import dataclass

import anyio
import torch
from starlette.requests import Request
from torch import nn

from models.gradcam import Explanation, NoLayer, gradcam, layers_of, overlay
from service.deps import get_engine
from service.errors import InvalidInput, Overloaded
from service.loading import ModelSet, ServedModel
from service.rendering import rgb_png
from service.resources import ComputeSlots

log = logging.getLogger("service.explain")

CONCURRENCY = 2  # GradCAM passes at once (each in its own worker thread, on its own copy of the network)
QUEUE_LIMIT = 16  # requests that may wait for a worker; beyond: 503 + Retry-After


@dataclass(frozen=True)
class Rendered:
    """An explanation and its overlay, ready to send."""

    explanation: Explanation
    png: bytes  # the overlay, (28*scale)^2 RGB

    @property
    def png_base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


class Explainer:
    """Runs GradCAM for the service: off the event loop, bounded, on private copies of the networks."""

    def __init__(
        self,
        model_set: ModelSet,
        *,
        concurrency: int = CONCURRENCY,
        queue_limit: int = QUEUE_LIMIT,
        retry_after_s: int = 1,
        slots: ComputeSlots | None = None,
    ) -> None:
        """``slots``: the forward passes allowed at once, shared with the engine's batchers."""
        if concurrency < 1 or queue_limit < 0:
            raise ValueError("concurrency must be >= 1 and queue_limit >= 0")
        self.models = model_set  # the engine's ModelSet, to tell when the service has reloaded
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self.retry_after_s = retry_after_s
        self.slots = slots or ComputeSlots(concurrency)
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._replicas: dict[str, queue.SimpleQueue[nn.Module]] = {}
        self._lock = threading.Lock()
        self._waiting = 0

    async def explain(self, served: ServedModel, image: torch.Tensor, label: int | None, scale: int) -> Rendered:
        """GradCAM of one (28, 28) uint8 image, and its overlay as a PNG; 503 when too many wait."""
        try:
            layers_of(served.module)  # an unknown architecture is a 422 before anything waits
        except NoLayer as exc:
            raise InvalidInput(str(exc)) from None
        if self._waiting >= self.queue_limit + self.concurrency:
            raise Overloaded(
                f"too many explanations in progress ({self._waiting}); retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self._waiting += 1
        try:
            # Cancelled while waiting for a worker (the request's deadline passed): it never runs.
            return await anyio.to_thread.run_sync(self._render, served, image, label, scale, limiter=self._limiter)
        finally:
            self._waiting -= 1

    def _replica(self, served: ServedModel) -> nn.Module:
        with self._lock:
            pool = self._replicas.setdefault(served.name, queue.SimpleQueue())
        try:
            return pool.get_nowait()
        except queue.Empty:
            # At most `concurrency` copies per network ever exist: one per worker that holds one.
            log.debug("copying the %s for GradCAM", served.name)
            return copy.deepcopy(served.module)

    def _render(self, served: ServedModel, image: torch.Tensor, label: int | None, scale: int) -> Rendered:
        module = self._replica(served)
        try:
            labels = None if label is None else torch.tensor([label], dtype=torch.long)
            with self.slots.held():
                (explanation,) = gradcam(module, image.unsqueeze(0), labels, temperature=served.temperature)
        finally:
            self._replicas[served.name].put(module)
        png = rgb_png(overlay(image.numpy(), explanation.normalized, scale))
        return Rendered(explanation, png)


def get_explainer(request: Request) -> Explainer:
    """The app's Explainer, made on first use for the engine's models (503 while they are not loaded)."""
    engine = get_engine(request)
    explainer: Explainer | None = getattr(request.app.state, "explainer", None)
    if explainer is None or explainer.models is not engine.models:
        # No await between the check and the assignment: concurrent first requests make one.
        explainer = Explainer(engine.models, retry_after_s=engine.retry_after_s, slots=engine.slots)
        request.app.state.explainer = explainer
    return explainer
