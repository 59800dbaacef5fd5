"""The web page in a real browser: Debian's chromium, driven by Playwright, against a real `python -m service`.

A person's path through the page: it opens, a class is picked by name, a grid is generated and its
images appear; one is chosen (by mouse, then by keyboard) and the verdict, its confidence and the
heatmap appear, matching what the API answers; an upload gets a verdict; a text file given as an
image gets the API's error message; strokes drawn on the sketch canvas (mouse and finger) become the
garment /translate draws, which the detector then judges in one click; with an API key set, the page
asks for it and then works.
Screenshots go to tests/artifacts/ (not committed).

Skipped, with the reason, when chromium or playwright is not installed:
``apt-get install -y chromium`` and ``pip install playwright`` (never ``playwright install``: it downloads
a browser build, which this project does not do).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import models
from bench import local_service
from tests.service.support import (
    PROCESS_ENV,
    make_detector,
    make_generator,
    make_translator,
    png_bytes,
    sample_pixels,
    sketch_pixels,
    write_weights,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("FGAN_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000  # for each wait in the page (the first /explain imports captum: about a second)

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright; no `playwright install`)"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install -y chromium)"),
]
expect = playwright_api.expect


# A real service ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_service(weights: Path, log: Path, **env: str) -> Iterator[str]:
    """``python -m service`` on a free loopback port, ready; stopped afterwards whatever happens."""
    with local_service.running(weights, log, env=PROCESS_ENV | env) as server:
        yield server.url


def call(
    url: str,
    path: str,
    *,
    form: dict[str, tuple[str, bytes] | str] | None = None,
    key: str | None = None,
    raw: bool = False,
):
    """GET, or POST a multipart form, with urllib: the answers the page must show (JSON, or the bytes when raw)."""
    headers = {"X-API-Key": key} if key else {}
    data = None
    if form is not None:
        boundary = "testboundary0123"
        parts = []
        for name, value in form.items():
            if isinstance(value, tuple):
                filename, content = value
                head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n'
                parts.append(f"--{boundary}\r\n{head}".encode() + content + b"\r\n")
            else:
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                )
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read() if raw else json.loads(response.read())


# What the shipped checkpoints record, in their shapes: a generator's evaluation, and a detector's evaluation
# beside its test figures for every generator it was measured on (11 sources x 2 conditions x 2 label modes),
# which the page once printed in full, 12,700 pixels tall.
GENERATOR_METRICS = {
    "evaluation": {
        "seed": 0,
        "samples_per_class": 1000,
        "fid": 62.112569525213075,
        "fid_train_vs_test": 0.9545689581107126,
        "gan_test": 0.978,
        "gan_train": 0.7779,
        "precision": 0.8566,
        "recall": 0.541,
    }
}
GENERATOR_TRAINING = {"dataset": "fashion-mnist", "epochs": 14, "steps": 13118, "batch_size": 64, "seed": 0}
FIGURES = {"accuracy": 0.99825, "accuracy_real": 0.9965, "accuracy_fake": 1.0, "roc_auc": 0.99999125, "ece": 0.00145}
DETECTOR_METRICS = {
    "temperature": 2.0,
    "ece_before": 0.0014043818632882349,
    "test": {
        f"{kind}:runs/gan-{i}/generator": {
            condition: {"labelled": {**FIGURES, "n_real": 2000}, "unlabelled": {**FIGURES, "n_real": 2000}}
            for condition in ("clean", "jpeg75")
        }
        for i, kind in enumerate(["seen"] * 6 + ["unseen"] * 5)
    },
    "evaluation": {
        "seed": 0,
        "accuracy": 0.9984,
        "accuracy_real": 0.9976,
        "accuracy_fake": 0.9992,
        "roc_auc": 0.9999924,
        "ece": 0.0011141721947460087,
        "n_real": 5000,
        "n_fake": 5000,
    },
}
DETECTOR_TRAINING = {"dataset": "fashion-mnist", "steps": 8000, "batch_size": 128, "seconds": 4968.3}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tiny models, with a calibrated detector (the default judge) beside the discriminator, recording figures
    as the shipped ones do, and a sketch translator."""
    root = tmp_path_factory.mktemp("browser")
    weights = write_weights(root / "weights", translator=make_translator())
    models.save_model(make_generator(), weights / "generator", training=GENERATOR_TRAINING, metrics=GENERATOR_METRICS)
    models.save_model(make_detector(), weights / "detector", training=DETECTOR_TRAINING, metrics=DETECTOR_METRICS)
    with running_service(weights, root / "service.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser) -> Iterator[object]:
    """A fresh page that records script errors; the test fails on any."""
    with open_page_in(browser.new_context(viewport={"width": 1200, "height": 1000})) as page:
        yield page


@contextlib.contextmanager
def open_page_in(context) -> Iterator[object]:
    """A page of ``context`` that records script errors (the test fails on any); the context is closed after."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        # A 4xx answer is logged by the browser as a failed resource; that is the API working, not the page failing.
        lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text and errors.append(msg.text),
    )
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors in the page: {errors}"


@pytest.fixture
def page(browser) -> Iterator[object]:
    with open_page(browser) as page:
        yield page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def verdict_text(answer: dict, model: str) -> str:
    """The sentence the page writes for an API verdict."""
    return f"{answer['label'].capitalize()}: {answer['confidence'] * 100:.1f}% confident ({model})"


# The tests ---------------------------------------------------------------------------------------------


def test_generate_check_and_errors_in_the_page(service: str, page) -> None:
    page.goto(service + "/")
    expect(page).to_have_title("Fashion-MNIST GAN")
    classes = page.locator("#gen-class option")
    expect(classes).to_have_count(10)
    expect(page.locator("#model-cards")).to_contain_text("detector (default for checks)")
    expect(page.locator("#model-cards")).to_contain_text("temperature 2")
    expect(page.get_by_label("Model", exact=True)).to_have_value("detector")
    # The judges to choose from are the classifiers, not the sketch translator.
    assert page.locator("#check-model option").all_inner_texts() == ["detector", "discriminator"]

    # Generate six sneakers from seed 42: the grid shows exactly the API's images.
    page.get_by_label("Class", exact=True).select_option(label="Sneaker")
    page.get_by_role("spinbutton", name=re.compile("^Seed")).fill("42")
    page.get_by_role("spinbutton", name="How many").fill("6")
    page.get_by_role("button", name="Generate", exact=True).click()
    samples = page.locator("#grid .sample img")
    expect(samples).to_have_count(6)
    expect(page.locator("#generate-status")).to_contain_text("6 × Sneaker, seeds 42–47")
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth === 28)"
    )
    api = call(service, "/generate?label=Sneaker&seed=42&n=6&format=json")
    shown = [src.split(",", 1)[1] for src in samples.evaluate_all("images => images.map(i => i.src)")]
    assert shown == api["images"]

    # Choose the third image: the verdict is the API's, with a bar and a heatmap.
    page.locator("#grid .sample").nth(2).click()
    answer = call(service, "/classify", form={"image": ("x.png", base64.b64decode(api["images"][2])), "label": "7"})
    expect(page.locator("#verdict")).to_have_text(verdict_text(answer, "detector"))
    expect(page.locator("#result-input-caption")).to_have_text("Generated Sneaker, seed 44")
    expect(page.locator("#check-class")).to_have_value("7")
    page.wait_for_function("document.getElementById('result-heatmap').naturalWidth === 224")
    width = page.locator("#confidence-fill").evaluate("e => e.style.width")
    assert width == f"{answer['confidence'] * 100:.1f}%"
    expect(page.locator("#explain-note")).to_contain_text("features.3")
    screenshot(page, "page-generated.png")

    # By keyboard only: Enter in the seed field generates, Tab reaches the first image, Enter checks it.
    page.get_by_role("spinbutton", name=re.compile("^Seed")).fill("")
    page.get_by_role("spinbutton", name=re.compile("^Seed")).type("7")
    page.keyboard.press("Enter")
    expect(page.locator("#generate-status")).to_contain_text("seeds 7–12")
    page.get_by_role("button", name="Generate", exact=True).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('sample')")
    page.keyboard.press("Enter")
    expect(page.locator("#result-input-caption")).to_have_text("Generated Sneaker, seed 7")
    expect(page.locator("#grid .sample").first).to_have_attribute("aria-pressed", "true")

    # Truncation 0.6: the API's images at that psi, said in the status line and the caption; back to 1 after.
    truncation = page.get_by_role("spinbutton", name=re.compile("^Truncation"))
    expect(truncation).to_have_value("1")
    truncation.fill("0.6")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("#generate-status")).to_contain_text("seeds 7–12, truncation 0.6")
    api = call(service, "/generate?label=Sneaker&seed=7&n=6&truncation=0.6&format=json")
    page.wait_for_function(
        "[...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth === 28)"
    )
    shown = [src.split(",", 1)[1] for src in samples.evaluate_all("images => images.map(i => i.src)")]
    assert shown == api["images"]
    assert shown != call(service, "/generate?label=Sneaker&seed=7&n=6&format=json")["images"]
    page.locator("#grid .sample").nth(1).click()
    expect(page.locator("#result-input-caption")).to_have_text("Generated Sneaker, seed 8, truncation 0.6")
    truncation.fill("1")

    # Upload an image with the discriminator: its verdict.
    pixels = sample_pixels(3)
    page.get_by_label("Model", exact=True).select_option("discriminator")
    page.get_by_label("Its class").select_option(label="Bag")
    page.locator("#upload").set_input_files(
        files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png_bytes(pixels)}]
    )
    answer = call(
        service, "/classify", form={"image": ("mine.png", png_bytes(pixels)), "label": "8", "model": "discriminator"}
    )
    expect(page.locator("#verdict")).to_have_text(verdict_text(answer, "discriminator"))
    expect(page.locator("#result-input-caption")).to_have_text("Uploaded: mine.png")
    expect(page.locator("#check-error")).to_be_hidden()
    # Dropped on the drop zone instead: the same.
    page.evaluate(
        """(data) => {
            const file = new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], "dropped.png", {type: "image/png"});
            const transfer = new DataTransfer();
            transfer.items.add(file);
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        base64.b64encode(png_bytes(pixels)).decode(),
    )
    expect(page.locator("#result-input-caption")).to_have_text("Uploaded: dropped.png")
    expect(page.locator("#verdict")).to_have_text(verdict_text(answer, "discriminator"))

    # A text file as the image: the API's message, and no stale verdict.
    page.locator("#upload").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image\n"}]
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(service, "/explain", form={"image": ("notes.txt", b"not an image\n"), "label": "8"})
    status, body = refused.value.code, json.loads(refused.value.read())
    assert status == 415
    error = page.locator("#check-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(f"Error (HTTP {status}, {body['error']}): {body['detail']}")
    expect(page.locator("#result")).to_be_hidden()
    # The discriminator without a class: its message says what to do.
    page.get_by_label("Its class").select_option(label="unknown")
    page.locator("#upload").set_input_files(
        files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png_bytes(pixels)}]
    )
    expect(error).to_contain_text("needs the image's class")
    screenshot(page, "page-error.png")

    # A bad count: the generate error shows the API's words.
    page.get_by_role("spinbutton", name="How many").evaluate("e => { e.removeAttribute('max'); e.value = '500'; }")
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("#generate-error")).to_contain_text("'n'")
    expect(page.locator("#generate-error")).to_contain_text("1 to 100")
    # A bad truncation: the API's words name the range.
    page.get_by_role("spinbutton", name="How many").fill("2")
    page.get_by_role("spinbutton", name=re.compile("^Truncation")).evaluate(
        "e => { e.removeAttribute('min'); e.value = '0'; }"
    )
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("#generate-error")).to_contain_text("'truncation'")
    expect(page.locator("#generate-error")).to_contain_text("0 < psi <= 1")


def test_the_models_panel_gives_headline_figures_in_words_and_the_rest_on_demand(service: str, page) -> None:
    page.goto(service + "/")
    cards = page.locator("#model-cards .card")
    expect(cards).to_have_count(4)  # generator, detector, discriminator, pix2pix
    generator = cards.filter(has=page.get_by_role("heading", name="generator", exact=True))
    detector = cards.filter(has=page.get_by_role("heading", name="detector (default for checks)", exact=True))
    expect(generator.locator(".headlines")).to_contain_text("FID 62.1, lower is better")
    expect(generator.locator(".headlines")).to_contain_text("97.8% of its images are recognised as the class asked")
    expect(generator.locator(".headlines")).to_contain_text("86% of its images look like real ones; it covers 54%")
    expect(generator.locator(".headlines")).to_contain_text("14 epochs, 13,118 steps of 64 images, on fashion-mnist")
    expect(detector.locator(".headlines")).to_contain_text(
        "99.84% right of 5,000 real and 5,000 generated images (real 99.8%, generated 99.9%)"
    )
    expect(detector.locator(".headlines")).to_contain_text("After JPEG (quality 75)")
    expect(detector.locator(".headlines")).to_contain_text("its confidence is off by 0.11% on average")
    expect(detector.locator(".headlines")).to_contain_text("0.999992")  # not rounded up to 1
    expect(detector.locator(".headlines")).to_contain_text("8,000 steps of 128 images, on fashion-mnist, in 1 h 23 min")

    # No raw JSON and no unrounded numbers; the rest waits behind a closed toggle.
    shown = page.locator("#models").inner_text()
    assert "{" not in shown and "62.1125" not in shown and "0.99999125" not in shown, shown
    assert cards.locator("details").evaluate_all("all => all.map(d => d.open)") == [False] * 4
    assert "samples_per_class" not in shown
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2500, f"the page is {height} px tall"
    screenshot(page, "page-models.png")

    # Opened, a card lists every figure, nested ones by their path, numbers rounded.
    generator.locator("summary").click()
    table = generator.locator("details table").first
    expect(table).to_contain_text("evaluation › samples_per_class")
    expect(table).to_contain_text("1,000")
    expect(table).to_contain_text("62.11")
    detector.locator("summary").click()
    expect(detector.locator("details")).to_contain_text("test › unseen:runs/gan-10/generator › jpeg75 › unlabelled")


def shown_pixels(page, selector: str) -> np.ndarray:
    """The pixels an <img> shows, drawn on a canvas inside the page (its CSP lets nothing fetch a blob: URL)."""
    data = page.locator(selector).evaluate(
        """(img) => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            canvas.getContext("2d").drawImage(img, 0, 0);
            return canvas.toDataURL("image/png");
        }"""
    )
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L"))


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def canvas_png(page) -> bytes:
    return base64.b64decode(page.locator("#sketch-canvas").evaluate("c => c.toDataURL('image/png')").split(",", 1)[1])


def test_draw_a_sketch_get_a_garment_and_check_it_with_the_detector(service: str, browser) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, has_touch=True)
    with open_page_in(context) as page:
        page.goto(service + "/")
        expect(page.locator("#sketch-unavailable")).to_be_hidden()
        canvas = page.locator("#sketch-canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()

        def at(x: float, y: float) -> tuple[float, float]:  # canvas pixels (224 square) -> page coordinates
            return box["x"] + x * box["width"] / 224, box["y"] + y * box["height"] / 224

        # A shoe's outline, drawn with the mouse: pointerdown, moves, pointerup.
        outline = [(20, 170), (60, 100), (110, 115), (200, 165), (200, 190), (20, 190), (20, 170)]
        page.mouse.move(*at(*outline[0]))
        page.mouse.down()
        for point in outline[1:]:
            page.mouse.move(*at(*point), steps=6)
        page.mouse.up()
        garment = page.locator("#sketch-garment")
        expect(garment).to_have_js_property("naturalWidth", 28)  # no wait_for_function: the page's CSP forbids eval
        expect(page.locator("#sketch-status")).to_have_text("Read as light strokes on a dark background.")
        expect(page.locator("#sketch-garment-caption")).to_have_text("Drawn by pix2pix from your drawing")
        expect(page.locator("#sketch-input-figure")).to_be_hidden()
        sent = canvas_png(page)
        pixels = np.asarray(Image.open(io.BytesIO(sent)).convert("L"))
        assert pixels.shape == (224, 224) and pixels.max() == 255 and pixels[0, 0] == 0  # strokes, light on dark
        api = call(service, "/translate", form={"image": ("drawing.png", sent)}, raw=True)
        np.testing.assert_array_equal(shown_pixels(page, "#sketch-garment"), png_pixels(api))
        first = api

        # A second stroke, with a finger (touch events: the browser makes them pointer events): a new garment.
        before = garment.get_attribute("src")
        touch = page.context.new_cdp_session(page)
        x, y = at(100, 40)
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for step in range(1, 8):
            x, y = at(100, 40 + step * 12)
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(garment).not_to_have_attribute("src", before)
        sent = canvas_png(page)
        assert np.asarray(Image.open(io.BytesIO(sent)).convert("L"))[60:120, 95:105].min() == 255  # the stroke
        api = call(service, "/translate", form={"image": ("drawing.png", sent)}, raw=True)
        expect(garment).to_have_js_property("naturalWidth", 28)
        assert api != first
        np.testing.assert_array_equal(shown_pixels(page, "#sketch-garment"), png_pixels(api))

        # One click: the detector's verdict on the garment, as /classify gives it for those bytes.
        page.get_by_role("button", name="Check with the detector").click()
        answer = call(service, "/classify", form={"image": ("garment.png", api), "model": "detector"})
        expect(page.locator("#sketch-verdict")).to_have_text(verdict_text(answer, "detector"))
        screenshot(page, "page-sketch.png")

        # A sketch from a file, dark strokes on white: inverted, as the API does it from the same file.
        drawing = np.kron(sketch_pixels(3, dark_on_light=True), np.ones((4, 4), dtype=np.uint8))
        page.locator("#sketch-upload").set_input_files(
            files=[{"name": "shoe.png", "mimeType": "image/png", "buffer": png_bytes(drawing)}]
        )
        expect(page.locator("#sketch-input-caption")).to_have_text("Sketch: shoe.png")
        expect(page.locator("#sketch-status")).to_contain_text("inverted first")
        expect(page.locator("#sketch-verdict")).to_have_text("")  # a new garment: no stale verdict
        expect(garment).to_have_js_property("naturalWidth", 28)
        api = call(service, "/translate", form={"image": ("shoe.png", png_bytes(drawing))}, raw=True)
        np.testing.assert_array_equal(shown_pixels(page, "#sketch-garment"), png_pixels(api))

        # A blank sketch: the API's message, and no stale garment.
        blank = png_bytes(np.full((50, 50), 255, dtype=np.uint8))
        page.locator("#sketch-upload").set_input_files(
            files=[{"name": "white.png", "mimeType": "image/png", "buffer": blank}]
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            call(service, "/translate", form={"image": ("white.png", blank)})
        body = json.loads(refused.value.read())
        error = page.locator("#sketch-error")
        expect(error).to_have_text(f"Error (HTTP 422, invalid_input): {body['detail']}")
        expect(page.locator("#sketch-result")).to_be_hidden()

        # Clear: an empty canvas, nothing shown.
        page.get_by_role("button", name="Clear").click()
        expect(error).to_be_hidden()
        assert np.asarray(Image.open(io.BytesIO(canvas_png(page))).convert("L")).max() == 0


def test_api_docs_render_without_the_internet(service: str, page) -> None:
    """/docs draws Swagger UI from the service's own files: every request to another host is refused here."""
    elsewhere: list[str] = []

    def only_the_service(route) -> None:
        if route.request.url.startswith(service):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.goto(service + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("fashion-gan")
    for path in ("/generate", "/classify", "/labels"):
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]')).to_be_visible()
    screenshot(page, "docs.png")
    assert elsewhere == []


def test_the_page_asks_for_the_api_key(browser, tmp_path: Path) -> None:
    weights = write_weights(tmp_path / "weights")
    with running_service(weights, tmp_path / "service.log", FGAN_API_KEY="open-sesame") as url:
        with pytest.raises(urllib.error.HTTPError) as refused:
            call(url, "/labels")
        assert refused.value.code == 401
        with open_page(browser) as page:
            page.goto(url + "/")
            expect(page.locator("#key-message")).to_have_text(re.compile("needs an API key"))
            expect(page.locator("#sketch-unavailable")).to_be_hidden()  # /info is behind the key: not known yet
            expect(page.get_by_label("API key")).to_be_focused()
            expect(page.locator("#generate-error")).to_contain_text("HTTP 401")
            page.get_by_label("API key").fill("wrong")
            page.keyboard.press("Enter")
            expect(page.locator("#key-message")).to_have_text(re.compile("did not accept"))
            page.get_by_label("API key").fill("open-sesame")
            page.keyboard.press("Enter")
            expect(page.locator("#gen-class option")).to_have_count(10)
            expect(page.locator("#generate-error")).to_be_hidden()
            # This server has no sketch translator: the panel says so, in the API's words.
            expect(page.locator("#sketch-unavailable")).to_contain_text("no sketch-to-clothing model is loaded")
            expect(page.get_by_role("button", name="Make the garment")).to_be_disabled()
            page.get_by_role("button", name="Generate", exact=True).click()
            expect(page.locator("#grid .sample")).to_have_count(8)
            page.locator("#grid .sample").first.click()
            expect(page.locator("#verdict")).to_have_text(
                re.compile(r"^(Real|Fake): \d+\.\d% confident \(discriminator\)$")
            )
            screenshot(page, "page-api-key.png")
