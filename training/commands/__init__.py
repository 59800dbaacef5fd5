"""One module per `python -m training` subcommand (see training.cli), and what the training commands share."""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger(__name__)


def start_or_resume(args: argparse.Namespace, trainer_class: Any, options_class: Any, **fields: Any) -> Any | None:
    """The trainer a run command asks for: ``--resume RUN_DIR`` (options from the run, ``--epochs`` and
    ``--device`` may change) or a new run from the options given (``fields`` override them); None, with the
    error logged, when neither --out nor --resume is given."""
    if args.resume:
        trainer = trainer_class.resume(args.resume, epochs=args.epochs, device=args.device)
        trainer.opts.progress = not args.no_progress
        return trainer
    if not args.out:
        log.error("give --out RUN_DIR for a new run, or --resume RUN_DIR")
        return None
    given = {k: v for k, v in vars(args).items() if k in options_class.__dataclass_fields__ and v is not None}
    return trainer_class(options_class(**{**given, **fields, "progress": not args.no_progress}))
