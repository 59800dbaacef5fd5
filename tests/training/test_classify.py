"""The classify command: one JSON line on stdout whatever the answer, clear errors, shared decoding."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import Detector, DetectorConfig, DetectorEnsemble, Discriminator, DiscriminatorConfig, save_model, to_float
from models.image_files import ImageDecodeError, decode_image
from training.cli import main
from training.commands.classify import decide

ROOT = Path(__file__).resolve().parents[2]


def fixed_detector(bias: float) -> Detector:
    """A detector whose logit is exactly ``bias`` for every image: all weights zero but the head's bias."""
    det = Detector(DetectorConfig(channels=4))
    with torch.no_grad():
        for p in det.parameters():
            p.zero_()
        det.head.bias.fill_(bias)
    return det.eval()


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@pytest.fixture
def weights(tmp_path) -> dict[str, Path]:
    """Weights folders: one says "real" (logit +2), one "fake" (logit -2), one calibrated (logit 3, T=2)."""
    torch.manual_seed(0)
    folders = {}
    for name, bias, metrics in (("real", 2.0, {}), ("fake", -2.0, {}), ("calibrated", 3.0, {"temperature": 2.0})):
        save_model(fixed_detector(bias), tmp_path / name / "detector", metrics=metrics)
        folders[name] = tmp_path / name
    disc = Discriminator(DiscriminatorConfig(channels=4))
    disc(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]))  # one power iteration
    save_model(disc.eval(), tmp_path / "real" / "discriminator")
    return folders


@pytest.fixture
def png(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(path)
    return path


def classify(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["classify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_real_and_fake_answers_are_one_pure_json_line(weights, png, capsys):
    code, out, _ = classify(["--image", str(png), "--weights-dir", str(weights["real"])], capsys)
    assert code == 0
    assert out == '{"label": "real", "confidence": ' + str(round(sigmoid(2.0), 4)) + "}\n"
    code, out, _ = classify(["--image", str(png), "--label", "8", "--weights-dir", str(weights["fake"])], capsys)
    assert code == 0
    answer = json.loads(out)
    assert answer == {"label": "fake", "confidence": round(sigmoid(2.0), 4)}
    assert out.count("\n") == 1


def test_the_fitted_temperature_is_applied(weights, png, capsys):
    code, out, _ = classify(
        ["--image", str(png), "--label", "Bag", "--weights-dir", str(weights["calibrated"])], capsys
    )
    assert code == 0 and json.loads(out) == {"label": "real", "confidence": round(sigmoid(3.0 / 2.0), 4)}


def test_an_ensemble_answers_from_the_mean_of_its_members_logits(tmp_path, png, capsys):
    # Members whose logits are 3 and -1: the ensemble's is 1, calibrated by its own temperature (0.5) to 2.
    ensemble = DetectorEnsemble.of([fixed_detector(3.0), fixed_detector(-1.0)])
    save_model(ensemble, tmp_path / "ens" / "detector", metrics={"temperature": 0.5})
    code, out, _ = classify(["--image", str(png), "--label", "3", "--weights-dir", str(tmp_path / "ens")], capsys)
    assert code == 0 and out == '{"label": "real", "confidence": ' + str(round(sigmoid(2.0), 4)) + "}\n"


def test_any_common_format_is_accepted(weights, tmp_path, capsys):
    rgba = Image.new("RGBA", (280, 280), (255, 0, 0, 128))
    for name, fmt in (("x.jpg", "JPEG"), ("x.webp", "WEBP"), ("x.bmp", "BMP"), ("x.gif", "GIF")):
        (rgba.convert("RGB") if fmt in ("JPEG", "BMP") else rgba).save(tmp_path / name, format=fmt)
        code, out, _ = classify(["--image", str(tmp_path / name), "--weights-dir", str(weights["real"])], capsys)
        assert code == 0 and json.loads(out)["label"] == "real", name


def test_discriminator_answers_from_its_own_logit(weights, png, capsys):
    code, out, _ = classify(
        ["--image", str(png), "--label", "trouser", "--model", "discriminator", "--weights-dir", str(weights["real"])],
        capsys,
    )
    assert code == 0
    from models import load_model

    disc = load_model(weights["real"] / "discriminator")
    x = to_float(decode_image(png.read_bytes())).view(1, 1, 28, 28)
    with torch.no_grad():
        logit = float(disc(x, torch.tensor([1]))[0])
    assert json.loads(out) == decide(logit)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad-bytes", "not an image file"),
        ("empty", "empty"),
        ("unknown-label", "unknown label 'Hat'"),
        ("label-out-of-range", "out of range"),
        ("missing-file", "no such file"),
        ("discriminator-without-label", "needs the image's class"),
        ("no-weights", "cannot load the detector"),
        ("bad-temperature", "detector/config.json: metrics.temperature must be a positive number, got '0.5'"),
        ("zero-temperature", "metrics.temperature must be a positive number, got 0"),
    ],
)
def test_errors_exit_nonzero_with_a_message_and_no_stdout(weights, png, tmp_path, capsys, case, message):
    image, extra, folder = png, [], weights["real"]
    if case == "bad-bytes":
        image = tmp_path / "bad.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    elif case == "empty":
        image = tmp_path / "empty.png"
        image.write_bytes(b"")
    elif case == "unknown-label":
        extra = ["--label", "Hat"]
    elif case == "label-out-of-range":
        extra = ["--label", "10"]
    elif case == "missing-file":
        image = tmp_path / "nowhere.png"
    elif case == "discriminator-without-label":
        extra = ["--model", "discriminator"]
    elif case == "no-weights":
        folder = tmp_path / "empty-weights"
    elif case in ("bad-temperature", "zero-temperature"):
        folder = tmp_path / case
        value = "0.5" if case == "bad-temperature" else 0  # a string is not a number, even a numeric one
        save_model(fixed_detector(2.0), folder / "detector", metrics={"temperature": value})
    code, out, err = classify(["--image", str(image), "--weights-dir", str(folder), *extra], capsys)
    assert code != 0
    assert out == ""
    assert message in err and err.startswith("classify: error:")


def test_decide_rounds_after_deciding():
    assert decide(0.0) == {"label": "fake", "confidence": 0.5}  # a logit of 0 is not "real", as in the metrics
    assert decide(1e-6) == {"label": "real", "confidence": 0.5}  # decided real, then rounded
    assert decide(-1e-6) == {"label": "fake", "confidence": 0.5}
    assert decide(1000.0) == {"label": "real", "confidence": 1.0}  # no overflow
    assert decide(-1000.0) == {"label": "fake", "confidence": 1.0}
    assert decide(4.0, temperature=2.0) == decide(2.0)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # warnings must not reach stdout either
    return subprocess.run(
        [sys.executable, "-m", "training", "classify", *args], capture_output=True, text=True, cwd=ROOT, env=env
    )


@pytest.mark.slow
def test_a_real_process_prints_only_json(weights, png):
    done = _run_cli("--image", str(png), "--weights-dir", str(weights["fake"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"label": "fake", "confidence": round(sigmoid(2.0), 4)}
    assert done.stdout.count("\n") == 1
    failed = _run_cli("--image", str(png), "--label", "Hat", "--weights-dir", str(weights["fake"]))
    assert failed.returncode != 0 and failed.stdout == ""
    assert "unknown label 'Hat'" in failed.stderr


# The shared decoding ----------------------------------------------------------------------------


def _encode(im: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_decoding_gives_28x28_uint8_from_any_mode():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    im = Image.fromarray(gray)
    for variant in (im, im.convert("RGB"), im.convert("P"), Image.fromarray(gray.astype(np.uint16) * 257)):
        out = decode_image(_encode(variant))
        assert out.dtype == torch.uint8 and out.shape == (28, 28)
        assert np.array_equal(out.numpy(), gray), variant.mode


def test_transparency_is_composited_on_black():
    im = Image.new("RGBA", (28, 28), (255, 255, 255, 0))
    im.paste((255, 255, 255, 255), (10, 10, 18, 18))
    out = decode_image(_encode(im))
    assert out[0, 0] == 0 and out[14, 14] == 255


def test_an_integer_nearest_upscale_decodes_back_exactly():
    gray = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    big = Image.fromarray(gray).resize((112, 112), Image.Resampling.NEAREST)  # as the service's `scale` serves it
    assert np.array_equal(decode_image(_encode(big)).numpy(), gray)
    small = decode_image(_encode(Image.fromarray(gray).resize((14, 14))))
    assert small.shape == (28, 28)


def test_undecodable_bytes_raise_a_clear_error():
    noisy = Image.fromarray(np.random.default_rng(2).integers(0, 256, (28, 28), dtype=np.uint8))
    cases = ((b"", "empty"), (b"GIF89a garbage", "Pillow can read"), (_encode(noisy)[:400], "truncated"))
    for data, message in cases:
        with pytest.raises(ImageDecodeError, match=message):
            decode_image(data)
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(_encode(Image.new("L", (100, 100))), max_pixels=5000)
