# CPU image: the project installed exactly as README.md's first command does, CPU build of torch.
#   docker build -f docker/cpu.Dockerfile -t ail:cpu --build-arg GIT_SHA=$(git rev-parse HEAD) .
#   docker run --rm -v "$PWD/runs:/ail/runs" ail:cpu algo=sam env=hopper seed=0
# Any Debian bookworm base works (BASE=debian:bookworm-slim, or a local debootstrap import): python3 and
# python3-venv come from apt where the base has no python3. Without registry access (podman, local torch
# wheel, TLS proxy): docs/docker.md.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# git: provenance (run directories record the SHA). No GL libraries: training never renders.
# Debian package versions are left to the base image's release (pinning them breaks every point release).
# The project goes into a venv (on PATH), so Debian's externally managed python3 is never touched.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && if ! command -v python3 > /dev/null; then apt-get install -y --no-install-recommends python3 python3-venv; fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WANDB_MODE=offline

# The package index of the CPU build of torch. Build-time pip settings (build args, so they do not stay in
# the image; empty: pip's defaults): PIP_FIND_LINKS, a folder of wheels mounted at build time (a local
# torch 2.13.0+cpu wheel wins over the index's 2.13.0); PIP_CERT, a CA bundle for a TLS-intercepting proxy.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=""
ARG PIP_CERT=""

WORKDIR /ail
# README step 1, with the package index of the CPU build of torch for the torch step. It sees only
# pyproject.toml and constraints.txt (README.md, pyproject's readme, is a placeholder until the COPY
# below), so this layer, all the downloads, stays cached while the code changes.
COPY pyproject.toml constraints.txt /ail/
RUN touch README.md \
    && pip install --index-url "${TORCH_INDEX}" torch==2.13.0 \
    && pip install -c constraints.txt -e ".[test]"

# After the dependencies, so that a new commit does not invalidate their layer.
ARG GIT_SHA=unknown
ENV AIL_GIT_SHA=${GIT_SHA}

# The code, and the editable install again now that the package is there (its dependencies are in);
# then a smoke check at build time: the entry point composes its default config.
COPY . /ail
RUN pip install --no-deps -e . \
    && python launch.py --cfg job > /dev/null

ENTRYPOINT ["python", "launch.py"]
CMD ["algo=bc", "env=hopper"]
