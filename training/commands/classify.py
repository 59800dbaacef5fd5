"""`classify`: tell whether image files are real Fashion-MNIST images or generated fakes.

One file (a single ``--image``): prints exactly one JSON line on stdout, ``{"label": "real" | "fake",
"confidence": c}``, and nothing else; logs and errors go to stderr, and any error exits non-zero.

Many files (``--image`` repeated, ``--dir``, ``--list``): one line per file on stdout, in order, JSON
``{"path": …, "label": …, "confidence": …}`` or CSV (``--format csv``); a file that cannot be judged gets
``{"path": …, "error": …, "detail": …}`` in its place and is counted, never fatal. A progress bar and a
summary (how many real, fake, not judged) go to stderr.

The verdicts are the service's, byte for byte (models.verdicts): the decision is taken on the calibrated
probability p of "real" (the logit divided by the checkpoint's fitted temperature, when it has one):
"real" when p > 0.5; the confidence is max(p, 1 - p), rounded to 4 digits after deciding, so it lies in
[0.5, 1]. The model runs in process, in batches; or, with ``--url``, a running service judges them,
``--concurrency`` batches of ``POST /classify/batch`` at once, 503s retried after their Retry-After.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch

from models import WEIGHTS_DIR, UnknownLabelError, parse_label, verdicts
from training.classify_files import MODELS, ClassifyError, Item, LocalJudge, Outcome, Progress, Report, collect
from training.device import resolve_device
from training.service_client import ServiceClient

NAME = "classify"
HELP = (
    "say whether images are real or fake: one file prints one JSON line "
    '{"label": "real"|"fake", "confidence": c}; many (--dir, --list, --image repeated) print a line each'
)
LOCAL_BATCH = 32  # images per forward pass in process (the fastest on one thread)
REMOTE_BATCH = 32  # images per POST /classify/batch (the service's largest forward pass by default)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_argument_group("which images")
    source.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help="an image file (PNG, JPEG, WebP, BMP, GIF, TIFF); repeat it for several",
    )
    source.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="DIR",
        help="every image file under DIR, recursively, by extension (.png .jpg .jpeg .gif .bmp .tif .tiff .webp)",
    )
    source.add_argument(
        "--list",
        action="append",
        default=[],
        metavar="FILE",
        help="a file with one image path a line, optionally followed by a tab and its class ('-': standard input)",
    )
    p.add_argument("--label", help="their class, an id 0-9 or a name such as 'Bag' (optional for the detector)")
    p.add_argument(
        "--model",
        choices=tuple(MODELS),
        default=None,
        help="which network judges (default detector; with --url, the service's default)",
    )
    p.add_argument(
        "--format",
        choices=("json", "csv"),
        default="json",
        help="many files: JSON lines (default) or CSV with a header",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help=f"images per forward pass (default {LOCAL_BATCH}) or per request with --url (default {REMOTE_BATCH})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    local = p.add_argument_group("in process")
    local.add_argument(
        "--weights-dir",
        type=Path,
        default=WEIGHTS_DIR,
        metavar="DIR",
        help="folder holding detector/ and discriminator/ checkpoints (default: the shipped weights)",
    )
    local.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    local.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="forward passes at once, one CPU thread each (default: the CPUs this process may run on)",
    )
    remote = p.add_argument_group("with a running service")
    remote.add_argument("--url", help="send the images to the service at URL (e.g. http://127.0.0.1:8000)")
    remote.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    remote.add_argument(
        "--retries",
        type=int,
        default=10,
        metavar="N",
        help="tries again after a 503 or a failed connection (default 10)",
    )
    remote.add_argument(
        "--api-key",
        default=os.environ.get("FGAN_API_KEY") or None,
        help="the service's API key (default: $FGAN_API_KEY)",
    )


def decide(logit: float, temperature: float = 1.0) -> dict[str, Any]:
    """The answer for one logit (positive = real), exactly as the service gives it (models.verdicts)."""
    p_real = verdicts.p_real(torch.tensor([logit]), temperature)[0]
    return verdicts.decide(p_real).as_dict()


def run(args: argparse.Namespace) -> int:
    try:
        items = collect(args.image, args.dir, args.list, args.label)
        if not items:
            raise ClassifyError("no images: give --image FILE, --dir DIR or --list FILE")
        for name in ("batch_size", "concurrency", "threads"):
            if (getattr(args, name) or 1) < 1:
                raise ClassifyError(f"--{name.replace('_', '-')} must be at least 1")
        if args.label is not None and args.url is None:
            parse_label(args.label)  # a bad --label is wrong for every file
        single = len(args.image) == 1 and not args.dir and not args.list
        return _run_single(args, items[0]) if single else _run_many(args, items)
    except (ClassifyError, UnknownLabelError, ValueError) as exc:
        # Written directly, not logged, so that no --log-level can hide it.
        sys.stderr.write(f"classify: error: {exc}\n")
        return 2


def _judge_batches(args: argparse.Namespace, items: list[Item]):
    """The outcomes, a batch at a time, in order; and the service client when there is one."""
    if args.url:
        client = ServiceClient(args.url, model=args.model, api_key=args.api_key, retries=args.retries)
        return client.judge_all(items, args.batch_size or REMOTE_BATCH, args.concurrency), client
    judge = LocalJudge.load(args.model or "detector", Path(args.weights_dir), resolve_device(args.device))
    if judge.needs_label and all(item.label is None for item in items):
        raise ClassifyError(f"the conditional {judge.name} needs the image's class: give --label (an id 0-9 or a name)")
    workers = args.threads or len(os.sched_getaffinity(0))
    return judge.judge_all(items, args.batch_size or LOCAL_BATCH, workers), None


def _run_single(args: argparse.Namespace, item: Item) -> int:
    batches, _ = _judge_batches(args, [item])
    outcome: Outcome = next(iter(batches))[0]
    if outcome.error is not None:
        detail = outcome.detail or outcome.error
        raise ClassifyError(detail if detail.startswith(str(item.path)) else f"{item.path}: {detail}")
    sys.stdout.write(json.dumps(outcome.verdict) + "\n")
    sys.stdout.flush()
    return 0


def _run_many(args: argparse.Namespace, items: list[Item]) -> int:
    report = Report(sys.stdout, args.format)
    batches, client = _judge_batches(args, items)
    with Progress(len(items), not args.no_progress) as progress:
        for outcomes in batches:
            try:
                report.write(outcomes)
            except BrokenPipeError:  # the reader went away (`… | head`): stop quietly, as a command does
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 1
            progress.update(len(outcomes))
    extra = ""
    if client is not None:
        spread = ", ".join(f"{name} {n}" for name, n in sorted(client.upstreams.items()))
        extra = f"; batches by X-Upstream: {spread}; {client.retried} retried"
    sys.stderr.write(report.summary(extra) + "\n")
    return 0
