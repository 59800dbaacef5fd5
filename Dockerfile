# syntax=docker/dockerfile:1
#
# The fashion-gan service image. See docs/deployment.md.
#
#   CPU (default; torch's CPU wheels, no CUDA libraries):
#     docker build -t fashion-gan:cpu .
#   NVIDIA GPU (torch's CUDA wheels, which carry the CUDA runtime themselves;
#   the driver comes from the host through the NVIDIA Container Toolkit):
#     docker build -t fashion-gan:gpu --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#
# Both run the same way: `docker run -p 8000:8000 fashion-gan:cpu` (add `--gpus all` for the GPU image).
# The image holds the service's runtime dependencies only (pyproject.toml's `dependencies`, at the versions
# locked in constraints.txt): nothing of the train or dev extras.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------
# The runtime requirements, read from pyproject.toml. A stage of their own: the dependency layers below are
# rebuilt when these lines or the lock change, not on every edit of pyproject.toml.
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /
RUN python -c "import tomllib; print(*tomllib.load(open('/pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /requirements.txt

# ---------------------------------------------------------------------------------------------------------
# The dependencies: a virtual environment with the runtime requirements at their locked versions.
FROM ${PYTHON_IMAGE} AS dependencies

# Where torch and torchvision come from: the CPU-only index by default. PyPI's Linux wheels are the CUDA
# build; https://download.pytorch.org/whl/cuXYZ picks one CUDA version.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# The lock is a constraints file: it fixes the version of whatever is installed, and what is installed is
# what the requirements ask for.
COPY constraints.txt ./
# Two steps. torch's own index serves torch and torchvision, and nothing else (--no-deps: it does not carry
# every locked version of their dependencies). Then PyPI serves the rest, dependencies of torch included:
# the torch installed here already satisfies the pin (2.15.0+cpu matches torch==2.15.0), so it stays, and
# the CPU build's own dependencies carry no CUDA libraries.
RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" --constraint constraints.txt \
        torch torchvision
COPY --from=requirements /requirements.txt ./
RUN pip install --no-cache-dir --constraint constraints.txt --requirement requirements.txt \
    && pip check

# ---------------------------------------------------------------------------------------------------------
# The project: code, shipped weights and console scripts, installed (not editable) under a prefix of its own
# with the environment's interpreter, so that the runtime stage adds it to the environment as a small layer
# while the dependencies' large one stays cached across source changes. No bytecode: compiled here, it
# would name the prefix instead of the environment in tracebacks.
FROM dependencies AS build
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY training ./training
RUN pip install --no-cache-dir --no-deps --no-compile --prefix /opt/project .

# ---------------------------------------------------------------------------------------------------------
# Runtime stage: the virtual environment only, run by an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="fashion-gan" \
      org.opencontainers.image.description="Conditional GAN for Fashion-MNIST: generate clothing images, tell real from fake." \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 fgan \
    && useradd --system --uid 10001 --gid fgan --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fgan

COPY --from=dependencies /opt/venv /opt/venv
COPY --from=build /opt/project /opt/venv

# Settings (all FGAN_*) are documented in docs/deployment.md; these two make the service reachable from
# outside the container. HOME points at /tmp so that nothing wants to write to a read-only root filesystem.
# glibc's malloc keeps the batch-sized buffers of a forward pass (a few MB each) in its heap for reuse
# instead of mapping and unmapping them on every batch: a fixed 32 MiB mmap threshold and a 256 MiB trim
# threshold (docs/deployment.md).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MALLOC_MMAP_THRESHOLD_=33554432 \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    FGAN_HOST=0.0.0.0 \
    FGAN_PORT=8000

# The environment is whole: every requirement met, the service and its console script in place, and the
# shipped weights installed (they are the default FGAN_WEIGHTS_DIR).
RUN pip check \
    && command -v fgan-serve \
    && python -c "import models, service.app, pathlib; assert any(pathlib.Path(models.WEIGHTS_DIR).glob('*/config.json')), 'no shipped weights'"

WORKDIR /tmp
USER 10001:10001
EXPOSE 8000

# Liveness: the process answers HTTP. The standard library only (no curl in a slim image); the port follows
# FGAN_PORT. tests/deploy runs this exact command against a real service.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FGAN_PORT', '8000'), timeout=4).status != 200)"]

# Exec form: the server is PID 1 and receives SIGTERM from `docker stop` for a graceful shutdown.
CMD ["fgan-serve"]
