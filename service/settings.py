"""Every setting of the service, read from ``FGAN_*`` environment variables by one pydantic-settings class.

Limits are validated here, so a bad value stops the process at startup with a
message that names the variable, instead of misbehaving under load.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import models

_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d{1,2})?")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class Settings(BaseSettings):
    """Service settings. Each field is also the environment variable ``FGAN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FGAN_", extra="ignore", validate_default=True)

    # Network.
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")

    # Models.
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
    weights_dir: Path = Field(
        models.WEIGHTS_DIR,
        description="Directory holding generator/, discriminator/ and optionally detector/ checkpoints.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch intra-op threads of each forward pass; default: the CPU budget (affinity and cgroup "
        "quota) split between the models' batchers. Passes at once: as many as the budget holds.",
    )

    # Micro-batching engine.
    max_batch_size: int = Field(32, ge=1, le=1024, description="Most images run in one forward pass.")
    batch_timeout_ms: float = Field(
        4.0, ge=0, le=1000, description="Longest a request waits for others to join its batch."
    )
    queue_limit: int = Field(
        256, ge=1, le=100_000, description="Requests that may wait per model; beyond it: 503 + Retry-After."
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Whole-request deadline (upload, queue, inference); past it: 504."
    )
    retry_after_s: int = Field(1, ge=1, le=3600, description="Retry-After value sent with 503 answers.")
    direct_generate: bool = Field(
        True,
        description="Answer plainly valid GET /generate PNG queries without FastAPI's request handling "
        "(the same answers, about 0.1 ms less CPU a request); false sends every request through FastAPI.",
    )
    direct_translate: bool = Field(
        True,
        description="Answer POST /translate requests with plainly valid options without FastAPI's request "
        "handling (the same answers, less CPU a request); false sends every request through FastAPI.",
    )

    # Input limits.
    max_upload_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body; beyond it: 413."
    )
    upload_memory_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        le=64 * 1024**3,
        description="Request body bytes the server holds at once (declared Content-Length, or the upload limit "
        "for a chunked body); beyond: 503 + Retry-After.",
    )
    max_batch_images: int = Field(
        64, ge=1, le=1024, description="Most images in one POST /classify/batch request; beyond it: 422."
    )
    max_batch_upload_bytes: int | None = Field(
        None,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest POST /classify/batch body; beyond it: 413 (each image in it is still held to "
        "FGAN_MAX_UPLOAD_BYTES). Default: FGAN_MAX_BATCH_IMAGES x FGAN_MAX_UPLOAD_BYTES, at most "
        "FGAN_UPLOAD_MEMORY_BYTES.",
    )
    max_image_pixels: int = Field(
        1024 * 1024,
        ge=28 * 28,
        le=64 * 1024 * 1024,
        description="Largest width × height an upload may declare; beyond it: 422, refused before decoding.",
    )

    # Security and logs.
    api_key: SecretStr | None = Field(
        None, description="When set, required as X-API-Key or 'Authorization: Bearer' (probes stay open)."
    )
    log_level: str = Field("info", description="critical, error, warning, info or debug.")
    log_format: Literal["text", "json"] = Field("text", description="text, or json (one object per line).")
    access_log: bool = Field(True, description="Log one line per request.")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE_RE.fullmatch(value):
            raise ValueError(f"device {value!r} is not one of auto, cpu, cuda, cuda:N")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in LOG_LEVELS:
            raise ValueError(f"log level {value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty FGAN_API_KEY= means "no key", not "the empty key".
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().isascii():
            raise ValueError("the API key must be ASCII (it travels in an HTTP header)")
        return value

    @model_validator(mode="after")
    def _check_upload_memory(self) -> Settings:
        if self.upload_memory_bytes < self.max_upload_bytes:
            raise ValueError(
                f"FGAN_UPLOAD_MEMORY_BYTES ({self.upload_memory_bytes}) is below FGAN_MAX_UPLOAD_BYTES "
                f"({self.max_upload_bytes}): an upload of the largest size could never be admitted"
            )
        if self.max_batch_upload_bytes is not None and not (
            self.max_upload_bytes <= self.max_batch_upload_bytes <= self.upload_memory_bytes
        ):
            raise ValueError(
                f"FGAN_MAX_BATCH_UPLOAD_BYTES ({self.max_batch_upload_bytes}) must lie between FGAN_MAX_UPLOAD_BYTES "
                f"({self.max_upload_bytes}: a batch of one image) and FGAN_UPLOAD_MEMORY_BYTES "
                f"({self.upload_memory_bytes}: a larger batch could never be admitted)"
            )
        return self

    @property
    def batch_upload_bytes(self) -> int:
        """The body limit of POST /classify/batch (FGAN_MAX_BATCH_UPLOAD_BYTES, or its default)."""
        if self.max_batch_upload_bytes is not None:
            return self.max_batch_upload_bytes
        return min(self.max_batch_images * self.max_upload_bytes, self.upload_memory_bytes)

    @property
    def batch_timeout_s(self) -> float:
        return self.batch_timeout_ms / 1000.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment, read once (tests build their own ``Settings`` instead)."""
    return Settings()
