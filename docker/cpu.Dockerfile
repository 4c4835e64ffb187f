# CPU image: the project installed exactly as README.md's first command does, CPU build of torch.
#   docker build -f docker/cpu.Dockerfile -t ail:cpu --build-arg GIT_SHA=$(git rev-parse HEAD) .
#   docker run --rm -v "$PWD/runs:/ail/runs" ail:cpu algo=sam env=hopper seed=0
FROM python:3.11-slim-bookworm

# git: provenance (run directories record the SHA). No GL libraries: training never renders.
# Debian package versions are left to the base image's release (pinning them breaks every point release).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

ARG GIT_SHA=unknown
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIL_GIT_SHA=${GIT_SHA} \
    WANDB_MODE=offline

WORKDIR /ail
COPY . /ail

# README step 1, with the package index of the CPU build of torch for the torch step.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt -e ".[test]"

# A smoke check at build time: the entry point composes its default config.
RUN python launch.py --cfg job > /dev/null

ENTRYPOINT ["python", "launch.py"]
CMD ["algo=bc", "env=hopper"]
