"""The inference engine: one micro-batcher per model, and the operations the API offers.

``Engine.generate``, ``Engine.classify`` and ``Engine.translate`` take validated, decoded inputs and
return plain results; they know nothing of HTTP. Each model has its own
batcher (and so its own worker thread and bounded queue), so a burst of
/classify calls does not queue behind /generate calls.

Batching does not change answers: latents are drawn per seed on the CPU
(``models.noise``; a request's truncation scales its own rows), every network here works on each row independently in eval
mode (their layers are models.layers' batch-invariant ones), and outputs are quantized like a served PNG.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

import models
from models import verdicts
from models.labels import accepted as accepted_labels
from service.batching import BatcherClosed, BatchObserver, MicroBatcher, QueueFull
from service.errors import InvalidInput, ModelUnavailable, Overloaded
from service.loading import DETECTOR, MISSING_TRANSLATOR, ModelSet, ServedModel
from service.resources import ComputeSlots
from service.settings import Settings

log = logging.getLogger("service.engine")

SEED_LIMIT = 2**32  # accepted seeds are 0 .. 2**32 - 1; image i of a request uses (seed + i) mod 2**32
RANDOM_SEED_LIMIT = 2**31  # seeds drawn for the caller are 0 .. 2**31 - 1
# Seeds and labels drawn for callers need variety, not secrecy: a PRNG seeded once from the OS.
_draw = random.Random()

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class GenerateJob:
    seeds: tuple[int, ...]
    label: int | None  # None for an unconditional generator
    truncation: float = 1.0  # psi, 0 < psi <= 1 (models.truncate)


@dataclass(frozen=True)
class ClassifyJob:
    image: torch.Tensor  # (28, 28) uint8
    label: int | None


@dataclass(frozen=True)
class Generated:
    images: np.ndarray  # (n, 28, 28) uint8
    seed: int  # image i was generated from (seed + i) mod 2**32
    label: int | None  # None when the generator is unconditional
    truncation: float = 1.0  # the psi its latents were drawn with


@dataclass(frozen=True)
class Translated:
    image: np.ndarray  # (28, 28) uint8: the garment drawn from the sketch
    model: str  # NAME@VERSION of the translator (ServedModel.tag)


@dataclass(frozen=True)
class Verdict:
    label: Literal["real", "fake"]
    confidence: float  # in [0.5, 1], rounded to 4 digits after the decision
    model: str


def verdict(p_real: float, model: str) -> Verdict:
    """The verdict as every judge of the project gives it (models.verdicts.decide), naming the model."""
    decision = verdicts.decide(p_real)
    return Verdict(decision.label, decision.confidence, model)


class Engine:
    """Serves a ModelSet through micro-batchers. ``start`` before use, ``close`` to drain."""

    def __init__(
        self,
        model_set: ModelSet,
        settings: Settings,
        observer: BatchObserver | None = None,
        requests_in_flight: Callable[[], int] | None = None,
        slots: ComputeSlots | None = None,
    ) -> None:
        """``requests_in_flight`` counts the server's open requests; with it, a batch waits for more
        requests only while some are in the server but not yet queued (see service.batching).
        ``slots``: how many forward passes may run at once (service.resources; default: one per model)."""
        self.models = model_set
        self.slots = slots or ComputeSlots(len(model_set.served))
        self._requests_in_flight = requests_in_flight
        self.device = model_set.device
        self.max_batch_size = settings.max_batch_size
        limits = {
            "max_batch_size": settings.max_batch_size,
            "max_wait_s": settings.batch_timeout_s,
            "queue_limit": settings.queue_limit,
            "observer": observer,
            "pending_arrivals": self._pending_arrivals if requests_in_flight is not None else None,
        }
        self.retry_after_s = settings.retry_after_s
        self._generator: MicroBatcher[GenerateJob, np.ndarray] = MicroBatcher(
            model_set.generator.name, self._in_slot(self._predict_generate), **limits
        )
        self._classifiers: dict[str, MicroBatcher[ClassifyJob, float]] = {
            name: MicroBatcher(name, self._in_slot(self._classify_predictor(served)), **limits)
            for name, served in model_set.classifiers.items()
        }
        self._translator: MicroBatcher[torch.Tensor, np.ndarray] | None = None
        if model_set.translator is not None:
            self._translator = MicroBatcher(model_set.translator.name, self._in_slot(self._predict_translate), **limits)

    def _in_slot(self, predict: Callable[[list[J]], list[R]]) -> Callable[[list[J]], list[R]]:
        """``predict``, run holding one of the compute slots."""

        def run(jobs: list[J]) -> list[R]:
            with self.slots.held():
                return predict(jobs)

        return run

    # Lifecycle -----------------------------------------------------------------------------------

    @property
    def batchers(self) -> list[MicroBatcher]:
        return [self._generator, *self._classifiers.values(), *([self._translator] if self._translator else [])]

    def _pending_arrivals(self) -> int:
        # Open requests not yet queued or running anywhere: they may be about to join. (Some are
        # only sending their answers; counting them costs at most one batch deadline of waiting.)
        assert self._requests_in_flight is not None
        return self._requests_in_flight() - sum(batcher.busy for batcher in self.batchers)

    def start(self) -> None:
        for batcher in self.batchers:
            batcher.start()

    def close(self, timeout: float) -> bool:
        """Finish queued and running work (up to ``timeout`` seconds per model) and stop the workers."""
        return all([batcher.close(timeout) for batcher in self.batchers])

    def warmup(self) -> None:
        """Run every model at batch size 1 and at the largest batch size, so first requests are not slow."""
        seeds = tuple(range(self.max_batch_size))
        label = 0 if self.models.generator.conditional else None
        self._predict_generate([GenerateJob(seeds[:1], label)])
        images = self._predict_generate([GenerateJob(seeds, label)])[0]
        for name, served in self.models.classifiers.items():
            predict = self._classify_predictor(served)
            label = None if served.label_use == "ignored" else 0
            jobs = [ClassifyJob(torch.from_numpy(image.copy()), label) for image in images]
            predict(jobs[:1])
            predict(jobs)
            log.debug("warmed up %s", name)
        if self.models.translator is not None:
            # Sketches of a kind: the generated images, as light strokes on dark.
            sketches = [torch.from_numpy(image.copy()) for image in images]
            self._predict_translate(sketches[:1])
            self._predict_translate(sketches)
            log.debug("warmed up %s", self.models.translator.name)

    # Operations ----------------------------------------------------------------------------------

    @property
    def classifier_names(self) -> list[str]:
        return list(self._classifiers)

    def resolve_classifier(self, model: str | None) -> ServedModel:
        """The classifier named ``model`` (the default one when None), or a 422 naming the choices."""
        name = self.models.default_classifier if model is None else model.strip().lower()
        if name == DETECTOR and name not in self.models.classifiers:
            raise InvalidInput(
                f"no detector is loaded on this server (its weights directory has no {DETECTOR}/ checkpoint); "
                f"accepted: {' or '.join(self.classifier_names)}"
            )
        if name not in self.models.classifiers:
            raise InvalidInput(
                f"unknown model {model!r}; accepted: {' or '.join(self.classifier_names)} "
                f"(default: {self.models.default_classifier})"
            )
        return self.models.classifiers[name]

    async def generate(self, *, label: int | None, seed: int | None, n: int, truncation: float = 1.0) -> Generated:
        """Generate n images of one class. Missing label or seed: drawn at random (and returned).

        ``truncation`` (psi, 0 < psi <= 1) pulls each latent toward the prior's mean (models.truncate);
        1 samples as trained. Out of range: a 422 naming the accepted range.
        """
        try:
            truncation = models.check_truncation(truncation)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if seed is None:
            seed = _draw.randrange(RANDOM_SEED_LIMIT)
        if not self.models.generator.conditional:
            label = None
        elif label is None:
            label = _draw.randrange(models.NUM_CLASSES)
        job = GenerateJob(tuple((seed + i) % SEED_LIMIT for i in range(n)), label, truncation)
        images = await self._submit(self._generator, job, rows=n)
        return Generated(images=images, seed=seed, label=label, truncation=truncation)

    async def classify(self, image: torch.Tensor, *, label: int | None, model: str | None) -> Verdict:
        """Tell whether a (28, 28) uint8 image is real or generated."""
        served = self._judge(model, [label])
        job = ClassifyJob(image, None if served.label_use == "ignored" else label)
        return verdict(await self._submit(self._classifiers[served.name], job), served.name)

    async def classify_many(
        self, images: Sequence[torch.Tensor], *, labels: Sequence[int | None], model: str | None
    ) -> list[Verdict | Exception]:
        """Judge several images of one request, each as ``classify`` would alone: each is its own item in the
        model's queue, so they share forward passes with other requests. All are admitted or none (503);
        what the model raised for one image is returned in its place."""
        served = self._judge(model, labels)
        jobs = [
            ClassifyJob(image, None if served.label_use == "ignored" else label)
            for image, label in zip(images, labels, strict=True)
        ]
        batcher = self._classifiers[served.name]
        with self._admission(batcher):
            outcomes = await batcher.submit_many(jobs)
        return [
            outcome if isinstance(outcome, Exception) else verdict(outcome, served.name)  # type: ignore[arg-type]
            for outcome in outcomes
        ]

    def require_translator(self) -> ServedModel:
        """The sketch-to-clothing model, or a 503 saying that this server has none."""
        if self.models.translator is None:
            raise ModelUnavailable(MISSING_TRANSLATOR)
        return self.models.translator

    async def translate(self, sketch: torch.Tensor) -> Translated:
        """The garment drawn from a (28, 28) uint8 sketch (light strokes on dark); 503 when no translator is loaded."""
        served = self.require_translator()
        assert self._translator is not None
        image = await self._submit(self._translator, sketch)
        return Translated(image=image, model=served.tag)

    def _judge(self, model: str | None, labels: Sequence[int | None]) -> ServedModel:
        """The classifier asked for, checking that it has the labels it needs (422 otherwise)."""
        served = self.resolve_classifier(model)
        if served.label_use == "required" and any(label is None for label in labels):
            raise InvalidInput(
                f"the {served.name} needs the image's class: send a 'label' field with {accepted_labels()}"
                + (" (or use model=detector, which does not)" if DETECTOR in self._classifiers else "")
            )
        return served

    async def _submit(self, batcher: MicroBatcher[J, R], job: J, rows: int = 1) -> R:
        with self._admission(batcher):
            return await batcher.submit(job, rows)

    @contextmanager
    def _admission(self, batcher: MicroBatcher) -> Iterator[None]:
        """A full queue or a stopping batcher, as the 503 + Retry-After the caller answers."""
        try:
            yield
        except QueueFull:
            raise Overloaded(
                f"the {batcher.name} queue is full ({batcher.queue_limit} requests waiting); retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            ) from None
        except BatcherClosed:
            raise Overloaded(
                "the service is shutting down; retry on another instance or shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            ) from None

    # Batch functions (worker threads) ------------------------------------------------------------

    def _predict_generate(self, jobs: list[GenerateJob]) -> list[np.ndarray]:
        served = self.models.generator
        seeds = [seed for job in jobs for seed in job.seeds]
        z = models.noise(seeds, served.module.z_dim)  # (N, z_dim), on the CPU: a seed means the same everywhere
        if any(job.truncation != 1.0 for job in jobs):
            # Each job's rows pulled toward the mean by its own psi (elementwise: the batch changes nothing).
            bounds = np.cumsum([0] + [len(job.seeds) for job in jobs]).tolist()
            z = torch.cat(
                [
                    models.truncate(z[a:b], job.truncation)
                    for job, a, b in zip(jobs, bounds[:-1], bounds[1:], strict=True)
                ]
            )
        y = None
        if served.conditional:
            y = torch.tensor([job.label for job in jobs for _ in job.seeds], dtype=torch.long)
        chunks = []
        with torch.inference_mode():
            z = z.to(self.device, non_blocking=True)  # once per batch
            y = y.to(self.device, non_blocking=True) if y is not None else None
            # A single request for more images than a batch holds runs in batch-sized chunks.
            for start in range(0, len(seeds), self.max_batch_size):
                stop = start + self.max_batch_size
                out = served.module(z[start:stop], None if y is None else y[start:stop])  # (b, 1, 28, 28)
                chunks.append(models.quantize(out))
        pixels = torch.cat(chunks).cpu().numpy()[:, 0]  # (N, 28, 28) uint8
        results, offset = [], 0
        for job in jobs:
            results.append(pixels[offset : offset + len(job.seeds)])
            offset += len(job.seeds)
        return results

    def _predict_translate(self, sketches: list[torch.Tensor]) -> list[np.ndarray]:
        served = self.models.translator
        assert served is not None
        x = models.to_float(torch.stack(sketches)).unsqueeze(1)  # (n, 1, 28, 28) in -1..1
        with torch.inference_mode():
            out = served.module(x.to(self.device, non_blocking=True))  # (n, 1, 28, 28)
            pixels = models.quantize(out).cpu().numpy()[:, 0]  # (n, 28, 28) uint8
        return list(pixels)

    def _classify_predictor(self, served: ServedModel) -> Callable[[Sequence[ClassifyJob]], list[float]]:
        def predict(jobs: Sequence[ClassifyJob]) -> list[float]:
            p_real = [0.0] * len(jobs)
            # Calls with and without labels cannot share a forward pass (y is a tensor or None).
            groups: dict[bool, list[int]] = {}
            for i, job in enumerate(jobs):
                groups.setdefault(job.label is not None, []).append(i)
            for has_label, index in groups.items():
                labels = [jobs[i].label for i in index] if has_label else None
                probs = verdicts.judge(
                    served.module, [jobs[i].image for i in index], labels, served.temperature, self.device
                )
                for i, p in zip(index, probs, strict=True):
                    p_real[i] = p
            return p_real

        return predict
