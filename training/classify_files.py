"""Judging many image files: which files, the verdict on each (in process), and how they are written out.

The verdicts are the service's, computed the same way (models.verdicts): a file judged here gets the
bytes of verdict that ``POST /classify`` gives it. A file that cannot be judged (unreadable, not an image,
corrupt, a bad label) gets an error in its place, with the code the service would give it; it never
stops the others.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from models import (
    DETECTORS,
    CheckpointError,
    Discriminator,
    UnknownLabelError,
    load_model,
    parse_label,
    read_temperature,
    verdicts,
)
from models.image_files import ImageDecodeError, UnsupportedImageFormat, decode_image

MODELS = {"detector": DETECTORS, "discriminator": Discriminator}
# File endings --dir looks for (the formats models.image_files reads), in any case.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"})
UNREADABLE = "unreadable"  # the file could not be read at all (missing, a directory, no permission)


class ClassifyError(Exception):
    """Anything that stops the whole command; the message is meant for the user."""


@dataclass(frozen=True)
class Item:
    """A file to judge, and its class when one was given."""

    path: Path
    label: str | None = None


@dataclass(frozen=True)
class Outcome:
    """A file's verdict (label, confidence) or why it has none (error, detail)."""

    path: Path
    label: str | None = None
    confidence: float | None = None
    error: str | None = None
    detail: str | None = None

    @property
    def verdict(self) -> dict[str, Any]:
        """What /classify answers for the file: its verdict, or its error."""
        if self.error is not None:
            return {"error": self.error, "detail": self.detail}
        return {"label": self.label, "confidence": self.confidence}


def failed(item: Item, error: str, detail: str) -> Outcome:
    return Outcome(item.path, error=error, detail=detail)


# Which files -------------------------------------------------------------------------------------


def collect(
    images: Sequence[str], dirs: Sequence[str], lists: Sequence[str], label: str | None, stdin: IO[str] = sys.stdin
) -> list[Item]:
    """The files named by ``--image``, found under each ``--dir`` (recursively, by IMAGE_SUFFIXES, sorted), and
    listed in each ``--list`` file (one path a line, optionally a tab and its class; ``-``: standard input; blank
    lines and lines starting with # skipped; relative paths from the list's folder). ``label`` applies to every
    file without a class of its own."""
    items = [Item(Path(p), label) for p in images]
    for name in dirs:
        folder = Path(name)
        if not folder.is_dir():
            raise ClassifyError(f"--dir {folder}: not a directory")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ClassifyError(f"--dir {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
        items += [Item(p, label) for p in found]
    for name in lists:
        items += _read_list(name, label, stdin)
    return items


def _read_list(name: str, label: str | None, stdin: IO[str]) -> list[Item]:
    base = Path.cwd() if name == "-" else Path(name).parent
    try:
        text = stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise ClassifyError(f"--list {name}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ClassifyError(f"--list {name}: not a text file (one path a line)") from None
    items = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, _, own = line.partition("\t")
        items.append(Item(base / path.strip(), own.strip() or label))
    return items


def read(item: Item) -> bytes | Outcome:
    """The file's bytes, or the outcome that says it cannot be read."""
    try:
        return item.path.read_bytes()
    except FileNotFoundError:
        return failed(item, UNREADABLE, f"{item.path}: no such file")
    except IsADirectoryError:
        return failed(item, UNREADABLE, f"{item.path}: is a directory, not an image file")
    except OSError as exc:
        return failed(item, UNREADABLE, f"{item.path}: cannot read ({exc.strerror or exc})")


# Judging in process ------------------------------------------------------------------------------


@dataclass
class LocalJudge:
    """A judging network loaded as the service loads it (frozen), with its temperature."""

    name: str
    module: torch.nn.Module
    temperature: float | None
    device: torch.device

    @classmethod
    def load(cls, name: str, weights_dir: Path, device: torch.device) -> LocalJudge:
        directory = weights_dir / name
        try:
            module = load_model(directory, expected=MODELS[name], device=device)
            temperature = read_temperature(module.checkpoint, directory)
        except CheckpointError as exc:
            hint = "" if directory.is_dir() else f" (train one, or point --weights-dir at a folder with {name}/)"
            raise ClassifyError(f"cannot load the {name}: {exc}{hint}") from None
        return cls(name, verdicts.freeze(module), temperature, device)

    @property
    def conditional(self) -> bool:
        return bool(getattr(getattr(self.module, "config", None), "num_classes", 0))

    @property
    def needs_label(self) -> bool:
        """The GAN's conditional discriminator judges an image against its class; a detector does without."""
        return isinstance(self.module, Discriminator) and self.conditional

    def judge_all(self, items: Sequence[Item], batch_size: int, workers: int) -> Iterator[list[Outcome]]:
        """The outcomes of ``items``, a batch at a time, in order: ``workers`` batches at once, each read, decoded
        and judged on one CPU thread (as the service runs a forward pass). On a busy machine this beats one pass
        on several threads, whose threads wait for each other at every layer (measured: docs/service.md)."""
        chunks = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
            yield from pool.map(self.judge, chunks)

    def judge(self, items: Sequence[Item]) -> list[Outcome]:
        """Read, decode and judge files on this thread; one outcome per file, in order."""
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)  # per OS thread
        outcomes: list[Outcome | None] = [None] * len(items)
        groups: dict[bool, list[tuple[int, torch.Tensor, int | None]]] = {}
        for i, item in enumerate(items):
            ready = self._prepare(item)
            if isinstance(ready, Outcome):
                outcomes[i] = ready
            else:
                image, label = ready
                groups.setdefault(label is not None, []).append((i, image, label))
        # Images with and without labels cannot share a forward pass (y is a tensor or None).
        for has_label, group in groups.items():
            labels = [label for _, _, label in group] if has_label else None
            probs = verdicts.judge(self.module, [image for _, image, _ in group], labels, self.temperature, self.device)
            for (i, _, _), p in zip(group, probs, strict=True):
                decision = verdicts.decide(p)
                outcomes[i] = Outcome(items[i].path, decision.label, decision.confidence)
        return outcomes  # type: ignore[return-value]

    def _prepare(self, item: Item) -> tuple[torch.Tensor, int | None] | Outcome:
        """The image as the network takes it and its label id (None when unused), or why it cannot be judged."""
        data = read(item)
        if isinstance(data, Outcome):
            return data
        # The class first, as the service reads a form.
        try:
            label = None if item.label is None else parse_label(item.label)
        except UnknownLabelError as exc:
            return failed(item, "invalid_input", str(exc))
        if label is None and self.needs_label:
            return failed(
                item,
                "invalid_input",
                f"the conditional {self.name} needs the image's class: give --label (an id 0-9 or a name)",
            )
        try:
            image = decode_image(data)  # (28, 28) uint8
        except ImageDecodeError as exc:
            code = "unsupported_media_type" if isinstance(exc, UnsupportedImageFormat) else "invalid_input"
            return failed(item, code, str(exc))
        return image, label if self.conditional else None


# Writing the answers ----------------------------------------------------------------------------

CSV_COLUMNS = ("path", "label", "confidence", "error", "detail")


class Report:
    """Writes one line per file (JSON or CSV) as outcomes come, and counts them for the summary."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._csv = None
        if fmt == "csv":
            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)

    def write(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.counts[outcome.label or "unjudged"] += 1
            if self._csv is not None:
                values = (outcome.label, outcome.confidence, outcome.error, outcome.detail)
                self._csv.writerow([str(outcome.path), *("" if v is None else v for v in values)])
            else:
                self.out.write(json.dumps({"path": str(outcome.path), **outcome.verdict}) + "\n")
        self.out.flush()

    def summary(self, extra: str = "") -> str:
        total = sum(self.counts.values())
        seconds = time.monotonic() - self.started
        rate = f"{total / seconds:.0f} images/s" if seconds > 0 else ""
        return (
            f"classify: {total} images: {self.counts['real']} real, {self.counts['fake']} fake, "
            f"{self.counts['unjudged']} not judged (unreadable or refused); {seconds:.1f} s ({rate}){extra}"
        )


@dataclass
class Progress:
    """A progress bar on stderr for more than a handful of files (tqdm), or nothing."""

    total: int
    enabled: bool
    _bar: Any = field(default=None, init=False)

    HANDFUL = 10

    def __enter__(self) -> Progress:
        if self.enabled and self.total > self.HANDFUL:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="img", file=sys.stderr, desc="classify")
        return self

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
