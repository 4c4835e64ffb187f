"""The docker images cannot be built here (no daemon): lint them and check they install as README.md does."""

from __future__ import annotations

import re
import shutil
import subprocess

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
