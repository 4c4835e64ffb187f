# CUDA image: README.md's install as written; torch 2.13.0 from PyPI is the CUDA build and brings
# the CUDA runtime as pip wheels, so only the host's NVIDIA driver is needed (--gpus all).
#   docker build -f docker/cuda.Dockerfile -t ail:cuda --build-arg GIT_SHA=$(git rev-parse HEAD) .
#   docker run --rm --gpus all -v "$PWD/runs:/ail/runs" ail:cuda algo=sam env=hopper seed=0
FROM python:3.11-slim-bookworm

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

ARG GIT_SHA=unknown
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIL_GIT_SHA=${GIT_SHA} \
    WANDB_MODE=offline \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /ail
COPY . /ail

# README step 1, verbatim.
RUN pip install torch==2.13.0 \
    && pip install -c constraints.txt -e ".[test]"

RUN python launch.py --cfg job > /dev/null

ENTRYPOINT ["python", "launch.py"]
CMD ["algo=bc", "env=hopper"]
