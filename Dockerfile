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

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------
# Build stage: a virtual environment with the pinned dependencies and the project (with its shipped weights).
FROM ${PYTHON_IMAGE} AS build

# Where torch and torchvision come from: the CPU-only index by default. PyPI's Linux wheels are the CUDA
# build; https://download.pytorch.org/whl/cuXYZ picks one CUDA version.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# The pinned versions first, so that the dependency layers are cached across source changes.
COPY constraints.txt ./
# Two steps. torch's own index serves torch and torchvision, and nothing else (--no-deps: it does not carry
# every pinned version of their dependencies). Then PyPI serves the rest, dependencies of torch included:
# the torch installed here already satisfies the pin (2.15.0+cpu matches torch==2.15.0), so it stays.
RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" --constraint constraints.txt \
        torch torchvision

# The project's other dependencies, read from pyproject.toml: this layer too is cached across source changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > requirements.txt \
    && pip install --no-cache-dir --constraint constraints.txt --requirement requirements.txt

COPY models ./models
COPY service ./service
COPY training ./training
# A regular (not editable) install: the code and the shipped weights land in site-packages, /src is not needed.
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && python -c "import models, pathlib; assert any(pathlib.Path(models.WEIGHTS_DIR).glob('*/config.json')), 'no shipped weights'"

# ---------------------------------------------------------------------------------------------------------
# Runtime stage: the virtual environment only, run by an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="fashion-gan" \
      org.opencontainers.image.description="Conditional GAN for Fashion-MNIST: generate clothing images, tell real from fake." \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 fgan \
    && useradd --system --uid 10001 --gid fgan --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin fgan

COPY --from=build /opt/venv /opt/venv

# Settings (all FGAN_*) are documented in docs/deployment.md; these two make the service reachable from
# outside the container. HOME points at /tmp so that nothing wants to write to a read-only root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    FGAN_HOST=0.0.0.0 \
    FGAN_PORT=8000

WORKDIR /tmp
USER 10001:10001
EXPOSE 8000

# Liveness: the process answers HTTP. The standard library only (no curl in a slim image); the port follows
# FGAN_PORT. tests/deploy runs this exact command against a real service.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FGAN_PORT', '8000'), timeout=4).status != 200)"]

# Exec form: the server is PID 1 and receives SIGTERM from `docker stop` for a graceful shutdown.
CMD ["fgan-serve"]
