"""Lint the docker images and check they install as README.md does; where podman, runc and a local Debian
bookworm base image are there (docs/docker.md), build the CPU image with podman and run a tiny job in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def test_both_images_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["cpu.Dockerfile", "cuda.Dockerfile"]


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed (pip install -e '.[test]' brings it)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile) -> None:
    out = subprocess.run(["hadolint", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_as_the_readme_does_and_run_launch_py(dockerfile) -> None:
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.+)\n", readme).group(1)  # README command 1
    steps = [s.strip() for s in first.split("&&") if s.strip().startswith("pip install")]
    assert steps == ["pip install torch==2.13.0", 'pip install -c constraints.txt -e ".[test]"']
    text = dockerfile.read_text()
    assert 'pip install -c constraints.txt -e ".[test]"' in text and "torch==2.13.0" in text
    assert 'ENTRYPOINT ["python", "launch.py"]' in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "runs" in ignored and "experts" not in ignored  # the shipped experts go into the image


# The daemonless route of docs/docker.md: a local base image, the local CPU torch wheel, the host's CA bundle.
PODMAN_BASE = os.environ.get("AIL_DOCKER_BASE", "localhost/debian-bookworm:local")
PODMAN_WHEELS = Path(os.environ.get("AIL_DOCKER_WHEELS", "/opt/wheels"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# crun fails on this machine's hybrid cgroups and the host's rlimits cannot be set in a container.
PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman_missing() -> str | None:
    """Why the podman build cannot run here, or None."""
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (docs/docker.md)"
    if subprocess.run(["podman", "image", "exists", PODMAN_BASE], capture_output=True, timeout=60).returncode != 0:
        return f"no base image {PODMAN_BASE} (docs/docker.md: debootstrap, then podman import)"
    if not any(PODMAN_WHEELS.glob("torch-2.13.0+cpu-*.whl")):
        return f"no torch-2.13.0+cpu wheel in {PODMAN_WHEELS} (AIL_DOCKER_WHEELS)"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a change to pyproject.toml or constraints.txt reinstalls everything (~5 min on 2 cores)
def test_cpu_image_builds_with_podman_and_runs_a_tiny_job(tmp_path: Path) -> None:
    reason = podman_missing()
    if reason:
        pytest.skip(reason)
    # Always built: podman's layer cache keeps the dependencies while only the code changed (seconds).
    mounts = ["-v", f"{PODMAN_WHEELS}:/mnt/host/wheels:ro"]
    args = ["--build-arg", f"BASE={PODMAN_BASE}", "--build-arg", "TORCH_INDEX=https://pypi.org/simple"]
    args += ["--build-arg", "PIP_FIND_LINKS=/mnt/host/wheels"]
    if HOST_CA.exists():  # a TLS-intercepting proxy's CA is in the host's bundle only
        mounts += ["-v", f"{HOST_CA}:/mnt/host/ca.crt:ro"]
        args += ["--build-arg", "PIP_CERT=/mnt/host/ca.crt"]
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip() or "unknown"
    build = subprocess.run(
        [*PODMAN, "build", *LIMITS, *mounts, *args, "--build-arg", f"GIT_SHA={sha}", "-f", "docker/cpu.Dockerfile", "-t", "ail:cpu", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]

    runs = tmp_path / "runs"
    runs.mkdir()
    tiny = ["algo=bc", "env=cartpole", "algo.updates=200", "algo.eval_every=100", "eval.episodes=2", "eval.final_episodes=2"]
    job = subprocess.run(
        [*PODMAN, "run", "--rm", *LIMITS, "-v", f"{runs}:/ail/runs", "ail:cpu", *tiny, "runtime.progress=false"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
    summaries = list(runs.rglob("summary.json"))
    assert len(summaries) == 1, f"{job.stdout}\n{sorted(runs.rglob('*'))}"
    summary = json.loads(summaries[0].read_text())
    assert summary["status"] == "complete" and summary["algo"] == "bc" and summary["final_eval_episodes"] == 2
