"""Settings from FGAN_* variables, command-line flags on top, and refusal of bad values at startup."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import models
from service.__main__ import load_settings, main, parse_args
from service.settings import Settings


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.device) == ("127.0.0.1", 8000, "auto")
    assert settings.weights_dir == models.WEIGHTS_DIR
    assert settings.max_upload_bytes == 1024 * 1024
    assert settings.max_image_pixels == 1024 * 1024
    assert settings.api_key is None
    assert settings.log_format == "text"
    assert settings.torch_threads is None  # planned at startup from the CPU budget (service.resources)
    assert settings.upload_memory_bytes == 64 * 1024 * 1024


def test_every_setting_reads_its_environment_variable(monkeypatch, tmp_path: Path) -> None:
    env = {
        "FGAN_HOST": "0.0.0.0",
        "FGAN_PORT": "9000",
        "FGAN_DEVICE": "CPU",
        "FGAN_WEIGHTS_DIR": str(tmp_path),
        "FGAN_TORCH_THREADS": "3",
        "FGAN_MAX_BATCH_SIZE": "16",
        "FGAN_BATCH_TIMEOUT_MS": "2.5",
        "FGAN_QUEUE_LIMIT": "10",
        "FGAN_REQUEST_TIMEOUT_S": "4",
        "FGAN_RETRY_AFTER_S": "2",
        "FGAN_MAX_UPLOAD_BYTES": "2048",
        "FGAN_UPLOAD_MEMORY_BYTES": "4096",
        "FGAN_MAX_IMAGE_PIXELS": "4096",
        "FGAN_API_KEY": "k3y-value",
        "FGAN_LOG_LEVEL": "DEBUG",
        "FGAN_LOG_FORMAT": "json",
        "FGAN_ACCESS_LOG": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.host, s.port, s.device, s.weights_dir, s.torch_threads) == ("0.0.0.0", 9000, "cpu", tmp_path, 3)
    assert s.upload_memory_bytes == 4096
    assert (s.max_batch_size, s.batch_timeout_s, s.queue_limit) == (16, 0.0025, 10)
    assert (s.request_timeout_s, s.retry_after_s, s.max_upload_bytes, s.max_image_pixels) == (4, 2, 2048, 4096)
    assert s.api_key is not None and s.api_key.get_secret_value() == "k3y-value"
    assert (s.log_level, s.log_format, s.access_log) == ("debug", "json", False)
    assert "k3y-value" not in repr(s)  # the key is a secret


def test_flags_override_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FGAN_PORT", "9000")
    monkeypatch.setenv("FGAN_HOST", "0.0.0.0")
    settings = load_settings(parse_args(["--port", "9100", "--device", "cpu", "--log-format", "json"]))
    assert (settings.port, settings.host, settings.device, settings.log_format) == (9100, "0.0.0.0", "cpu", "json")


def test_empty_api_key_means_none(monkeypatch) -> None:
    monkeypatch.setenv("FGAN_API_KEY", "")
    assert Settings().api_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FGAN_DEVICE", "tpu"),
        ("FGAN_PORT", "0"),
        ("FGAN_MAX_BATCH_SIZE", "0"),
        ("FGAN_BATCH_TIMEOUT_MS", "-1"),
        ("FGAN_QUEUE_LIMIT", "0"),
        ("FGAN_REQUEST_TIMEOUT_S", "0"),
        ("FGAN_MAX_UPLOAD_BYTES", "10"),
        ("FGAN_LOG_LEVEL", "loud"),
        ("FGAN_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_are_refused(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_main_exits_2_with_a_message_naming_the_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FGAN_MAX_BATCH_SIZE", "0")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "FGAN_MAX_BATCH_SIZE" in err
    assert "greater than or equal to 1" in err


def test_an_upload_budget_below_the_upload_limit_is_refused_naming_both(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FGAN_MAX_UPLOAD_BYTES", str(2 * 2**20))
    monkeypatch.setenv("FGAN_UPLOAD_MEMORY_BYTES", str(2**20))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("invalid settings") == 1
    assert "FGAN_UPLOAD_MEMORY_BYTES (1048576) is below FGAN_MAX_UPLOAD_BYTES (2097152)" in err
