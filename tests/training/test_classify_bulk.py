"""The classify command on many files: JSON lines or CSV in order, a summary, unreadable files reported and
skipped, the service's verdicts byte for byte, and --url against a real service with its 503s waited out."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import local_service
from bench.local_service import LocalService
from tests.service.support import PROCESS_ENV, make_detector, write_weights
from training.classify_files import Item, collect
from training.cli import main
from training.service_client import multipart


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A served layout (generator, discriminator, a calibrated detector), tiny networks."""
    return write_weights(
        tmp_path_factory.mktemp("weights"), detector=make_detector(), detector_metrics={"temperature": 1.5}
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Eight images in two subfolders, a text file named like an image, and a file that is not an image."""
    rng = np.random.default_rng(0)
    for i in range(8):
        path = tmp_path / "images" / ("a" if i < 4 else "b/c") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(path)
    (tmp_path / "images" / "a" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "images" / "notes.txt").write_text("not looked at")
    return tmp_path / "images"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["classify", "--no-progress", *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_by_one(capsys, weights: Path, paths: list[Path], *extra: str) -> dict[str, dict]:
    """Each file's verdict from the single-file form of the command."""
    answers = {}
    for path in paths:
        code, out, _ = run(capsys, "--image", str(path), "--weights-dir", str(weights), *extra)
        assert code == 0
        answers[str(path)] = json.loads(out)
    return answers


def test_a_folder_gives_a_json_line_per_image_in_order_and_a_summary(capsys, weights, folder) -> None:
    code, out, err = run(capsys, "--dir", str(folder), "--weights-dir", str(weights))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    paths = sorted(p for p in folder.rglob("*.png"))
    assert [line["path"] for line in lines] == [str(p) for p in paths]  # recursive, by extension, sorted
    broken = next(line for line in lines if line["path"].endswith("broken.png"))
    assert broken["error"] == "unsupported_media_type" and "not a readable image" in broken["detail"]
    good = [p for p in paths if p.name != "broken.png"]
    expected = one_by_one(capsys, weights, good)
    assert {
        line["path"]: {"label": line["label"], "confidence": line["confidence"]} for line in lines if "label" in line
    } == expected
    real = sum(v["label"] == "real" for v in expected.values())
    assert f"9 images: {real} real, {8 - real} fake, 1 not judged" in err


def test_csv_has_a_header_and_a_row_per_image(capsys, weights, folder) -> None:
    code, out, _ = run(capsys, "--dir", str(folder), "--weights-dir", str(weights), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "label", "confidence", "error", "detail"]
    assert len(rows) == 9
    judged = [r for r in rows if r["label"]]
    assert len(judged) == 8 and all(
        r["label"] in ("real", "fake") and 0.5 <= float(r["confidence"]) <= 1 for r in judged
    )
    (broken,) = [r for r in rows if not r["label"]]
    assert broken["error"] == "unsupported_media_type" and broken["confidence"] == ""


def test_images_lists_and_labels_together_and_unreadable_files_skipped(capsys, weights, folder, tmp_path) -> None:
    pngs = sorted(folder.rglob("[0-9].png"))
    listing = tmp_path / "list.txt"
    # Relative paths from the list's folder; a tab and a class; a comment; a file that is not there.
    listing.write_text(f"# to judge\nimages/a/0.png\t3\nimages/a/1.png\n\nnowhere.png\n{pngs[2]}\tBag\n")
    code, out, err = run(
        capsys,
        "--image",
        str(pngs[5]),
        "--list",
        str(listing),
        "--label",
        "7",
        "--weights-dir",
        str(weights),
        "--model",
        "discriminator",
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [Path(line["path"]).name for line in lines] == ["5.png", "0.png", "1.png", "nowhere.png", "2.png"]
    assert lines[3]["error"] == "unreadable" and "no such file" in lines[3]["detail"]
    # Each with its own class, or --label's: as the single-file form judges it.
    for line, label in zip([lines[i] for i in (0, 1, 2, 4)], ["7", "3", "7", "Bag"], strict=True):
        alone = one_by_one(capsys, weights, [Path(line["path"])], "--label", label, "--model", "discriminator")
        assert {"label": line["label"], "confidence": line["confidence"]} == next(iter(alone.values()))
    assert "5 images" in err and "1 not judged" in err


def test_what_stops_the_whole_command(capsys, weights, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    for args, words in (
        (["--dir", str(tmp_path / "empty")], "no image files"),
        (["--dir", str(tmp_path / "missing")], "not a directory"),
        (["--list", str(tmp_path / "missing.txt")], "cannot read"),
        (["--image", "a.png", "--image", "b.png", "--label", "Hat"], "unknown label 'Hat'"),
        (["--image", "a.png", "--image", "b.png", "--model", "discriminator"], "needs the image's class"),
        ([], "no images"),
    ):
        code, out, err = run(capsys, *args, "--weights-dir", str(weights))
        assert code == 2 and out == "" and words in err, (args, err)


def test_the_files_are_collected_in_the_order_given(tmp_path) -> None:
    listing = io.StringIO("x.png\t5\ny.png\n")
    items = collect(["a.png"], [], ["-"], "1", stdin=listing)
    assert items == [Item(Path("a.png"), "1"), Item(Path.cwd() / "x.png", "5"), Item(Path.cwd() / "y.png", "1")]


# Against a running service -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    log = tmp_path_factory.mktemp("service") / "service.log"
    with local_service.running(weights, log, env=PROCESS_ENV | {"FGAN_RETRY_AFTER_S": "1"}) as server:
        yield server


class BusyOnce:
    """A loopback proxy in front of the service: answers its first POST 503 with Retry-After: 1, forwards the rest,
    and names itself in X-Upstream, as the compose proxy names a replica."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.posts: list[tuple[float, int]] = []  # (monotonic time, status answered)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not outer.posts:
                    outer.posts.append((time.monotonic(), 503))
                    self._answer(503, b'{"error":"overloaded","detail":"busy"}', {"Retry-After": "1"})
                    return
                request = urllib.request.Request(
                    outer.target + self.path, body, {"Content-Type": self.headers["Content-Type"]}, method="POST"
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    outer.posts.append((time.monotonic(), response.status))
                    self._answer(response.status, response.read(), {"X-Upstream": "replica-1"})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BusyOnce:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_url_mode_gives_the_in_process_verdicts_over_batches(capsys, weights, folder, service) -> None:
    _, local, _ = run(capsys, "--dir", str(folder), "--weights-dir", str(weights))
    code, remote, err = run(
        capsys, "--dir", str(folder), "--url", service.url, "--batch-size", "3", "--concurrency", "2"
    )
    assert code == 0
    assert remote == local  # the same lines, byte for byte: the service's verdicts are the command's
    assert "9 images" in err and "1 not judged" in err


@pytest.mark.slow
def test_url_mode_waits_out_a_503_and_retries(capsys, weights, folder, service) -> None:
    _, local, _ = run(capsys, "--dir", str(folder), "--weights-dir", str(weights))
    with BusyOnce(service.url) as proxy:
        code, remote, err = run(capsys, "--dir", str(folder), "--url", proxy.url, "--batch-size", "16")
    assert code == 0 and remote == local
    (first, refused), (second, status) = proxy.posts
    assert (refused, status) == (503, 200)
    assert second - first >= 0.95  # sent again only after the Retry-After second
    assert "batches by X-Upstream: replica-1 1; 1 retried" in err


@pytest.mark.slow
def test_a_request_the_service_refuses_is_each_of_its_images_error(capsys, folder, service) -> None:
    # The discriminator needs labels: the service's 422 becomes each image's entry, and the run goes on.
    code, out, _ = run(capsys, "--dir", str(folder), "--url", service.url, "--model", "discriminator")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 9 and all(line["error"] == "invalid_input" for line in lines)
    assert "needs the image's class" in lines[0]["detail"]
    body, ctype = multipart([Item(Path("x.png"), "3")], [b"png"], True, "detector")
    assert b'name="label"\r\n\r\n3\r\n' in body and b'name="model"\r\n\r\ndetector\r\n' in body
    assert ctype.startswith("multipart/form-data; boundary=")
