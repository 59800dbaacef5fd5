"""The web page in a real browser: Debian's chromium, driven by Playwright, against a real `python -m service`.

A person's path through the page: it opens, a class is picked by name, a grid is generated and its
images appear; one is chosen (by mouse, then by keyboard) and the verdict, its confidence and the
heatmap appear, matching what the API answers; an upload gets a verdict; a text file given as an
image gets the API's error message; with an API key set, the page asks for it and then works.
Screenshots go to tests/artifacts/ (not committed).

Skipped, with the reason, when chromium or playwright is not installed:
``apt-get install -y chromium`` and ``pip install playwright`` (never ``playwright install``: it downloads
a browser build, which this project does not do).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import models
from bench import local_service
from tests.service.support import PROCESS_ENV, make_detector, make_generator, png_bytes, sample_pixels, write_weights

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


def call(url: str, path: str, *, form: dict[str, tuple[str, bytes] | str] | None = None, key: str | None = None):
    """GET, or POST a multipart form, with urllib: the answers the page must show."""
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
        return json.loads(response.read())


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
    as the shipped ones do."""
    root = tmp_path_factory.mktemp("browser")
    weights = write_weights(root / "weights")
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
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
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
    expect(cards).to_have_count(3)
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
    assert cards.locator("details").evaluate_all("all => all.map(d => d.open)") == [False, False, False]
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
            expect(page.get_by_label("API key")).to_be_focused()
            expect(page.locator("#generate-error")).to_contain_text("HTTP 401")
            page.get_by_label("API key").fill("wrong")
            page.keyboard.press("Enter")
            expect(page.locator("#key-message")).to_have_text(re.compile("did not accept"))
            page.get_by_label("API key").fill("open-sesame")
            page.keyboard.press("Enter")
            expect(page.locator("#gen-class option")).to_have_count(10)
            expect(page.locator("#generate-error")).to_be_hidden()
            page.get_by_role("button", name="Generate", exact=True).click()
            expect(page.locator("#grid .sample")).to_have_count(8)
            page.locator("#grid .sample").first.click()
            expect(page.locator("#verdict")).to_have_text(
                re.compile(r"^(Real|Fake): \d+\.\d% confident \(discriminator\)$")
            )
            screenshot(page, "page-api-key.png")
