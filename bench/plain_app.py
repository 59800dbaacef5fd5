"""Baseline for bench/service_bench.py: the usual way such a service is written.

One FastAPI handler per endpoint that runs the model on its own request, with
``UploadFile``/``Form`` for the upload and a sync ``def`` so FastAPI runs it in
its thread pool. No batching, no queue limit, no input policy. Same models and
same PNG encoding as the service, so the comparison measures the serving design;
/translate inverts a sketch on a light background as the service does (the model
needs light strokes on dark), and has the route when the weights hold pix2pix/.

Run: ``FGAN_WEIGHTS_DIR=… python -m uvicorn plain_app:app --app-dir bench``.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import Response
from PIL import Image

import models
from models.image_files import encode_png
from service.loading import TRANSLATOR, default_classifier_name
from service.sketches import LIGHT, background

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    weights = Path(os.environ.get("FGAN_WEIGHTS_DIR", models.WEIGHTS_DIR))
    state["generator"] = models.load_model(weights / "generator", expected=models.Generator)
    # The model the service's /classify uses by default, with its temperature (1 when it has none).
    name = default_classifier_name(weights)
    state["judge"] = models.load_model(weights / name)
    state["temperature"] = models.read_temperature(state["judge"].checkpoint, weights / name, default=1.0)
    if (weights / TRANSLATOR).is_dir():
        state["translator"] = models.load_model(weights / TRANSLATOR, expected=models.Pix2PixGenerator)
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


@app.post("/translate")
def translate(image: Annotated[UploadFile, File()], scale: int = 1) -> Response:
    pixels = torch.frombuffer(
        bytearray(Image.open(io.BytesIO(image.file.read())).convert("L").resize((28, 28)).tobytes()), dtype=torch.uint8
    ).view(28, 28)
    if background(pixels) >= LIGHT:  # dark strokes on a light background
        pixels = 255 - pixels
    with torch.no_grad():
        garment = models.quantize(state["translator"](models.to_float(pixels).view(1, 1, 28, 28)))[0, 0].numpy()
    return Response(encode_png(np.kron(garment, np.ones((scale, scale), dtype=np.uint8))), media_type="image/png")
