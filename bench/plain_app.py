"""Baseline for bench/service_bench.py: the usual way such a service is written.

One FastAPI handler per endpoint that runs the model on its own request, with
``UploadFile``/``Form`` for the upload and a sync ``def`` so FastAPI runs it in
its thread pool. No batching, no queue limit, no input policy. Same models and
same PNG encoding as the service, so the comparison measures the serving design.

Run: ``FGAN_WEIGHTS_DIR=… python -m uvicorn plain_app:app --app-dir bench``.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import Response
from PIL import Image

import models
from models.image_files import encode_png
from service.loading import default_classifier_name

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    weights = Path(os.environ.get("FGAN_WEIGHTS_DIR", models.WEIGHTS_DIR))
    state["generator"] = models.load_model(weights / "generator", expected=models.Generator)
    # The model the service's /classify uses by default, with its temperature (1 when it has none).
    name = default_classifier_name(weights)
    state["judge"] = models.load_model(weights / name)
    state["temperature"] = models.read_temperature(state["judge"].checkpoint, weights / name, default=1.0)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/generate")
def generate(label: int = 0, seed: int = 0) -> Response:
    generator = state["generator"]
    with torch.no_grad():
        image = generator(models.noise([seed], generator.z_dim), torch.tensor([label]))
    return Response(encode_png(models.quantize(image)[0, 0]), media_type="image/png")


@app.post("/classify")
def classify(image: Annotated[UploadFile, File()], label: Annotated[int, Form()]) -> dict[str, object]:
    pixels = Image.open(io.BytesIO(image.file.read())).convert("L").resize((28, 28))
    x = models.to_float(torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8)).view(1, 1, 28, 28)
    with torch.no_grad():
        p_real = torch.sigmoid(state["judge"](x, torch.tensor([label])) / state["temperature"]).item()
    if p_real >= 0.5:
        return {"label": "real", "confidence": round(p_real, 4)}
    return {"label": "fake", "confidence": round(1 - p_real, 4)}
