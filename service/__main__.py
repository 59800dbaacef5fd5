"""``python -m service`` / ``fgan-serve``: run the REST service with uvicorn.

Every setting is an ``FGAN_*`` environment variable (see service/settings.py);
the flags below override the environment. Exit status: 0 after a clean stop
(SIGINT or SIGTERM), 2 for invalid settings, 3 (uvicorn's code) when startup
failed, e.g. on a bad checkpoint, after one log line that names the file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.observability import configure_logging
from service.settings import LOG_LEVELS, Settings

log = logging.getLogger("service")


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal ends a graceful shutdown with status 0.

    uvicorn re-raises SIGINT/SIGTERM once it has shut down, so the process would end with
    KeyboardInterrupt (130) or be killed by SIGTERM; a service manager should see a clean exit.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve the Fashion-MNIST GAN over REST. Every option is also an FGAN_* environment variable.",
    )
    parser.add_argument("--host", help="address to listen on (FGAN_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (FGAN_PORT, default 8000)")
    parser.add_argument("--weights-dir", help="checkpoint directory (FGAN_WEIGHTS_DIR, default: the shipped models)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (FGAN_DEVICE, default auto)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="FGAN_LOG_LEVEL, default info")
    parser.add_argument("--log-format", choices=("text", "json"), help="FGAN_LOG_FORMAT, default text")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the given flags on top."""
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        for error in exc.errors():
            if not error["loc"]:  # a rule between settings; its message names them
                print(f"invalid settings: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
                continue
            name = "FGAN_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"invalid setting {name}={error.get('input')!r}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # configure_logging above already routes uvicorn's records
        log_level=settings.log_level,
        access_log=False,  # RequestMiddleware writes one access line per request, with its request id
        server_header=False,
        lifespan="on",
        # asyncio's loop, not uvloop: under a saturated loop uvloop accepts new connections seconds late
        # (they wait in the kernel's backlog while open keep-alive connections are served), which made
        # p99 7-15 s at overload where asyncio's stays under 1 s (docs/reliability.md).
        loop="asyncio",
        # Open requests finish within the request timeout; give them that long to drain on shutdown.
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 1,
    )
    server = _Server(config)
    server.run()
    # uvicorn exits with status 3 itself when the lifespan fails; this covers any other failed start.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
