import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Triton's interpreter runs the GPU kernels on CPU tensors, so CI tests them without a GPU. The flag must
# be set before triton is first imported (triton.language wraps its helpers at import time).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# stable-pretraining, once installed, adds its callbacks to every Lightning Trainer; a Trainer without a
# folder of its own then writes an environment dump under ~/.cache/stable-pretraining. Keep the suite's
# runs out of the user's home.
os.environ.setdefault("SPT_CACHE_DIR", tempfile.mkdtemp(prefix="music-ssl-tests-spt-"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """The sdist, the wheel built from it, and from-tree/ with a wheel built straight from the checkout.

    `make test` builds them once with the standard build front end (`python -m build`) into the folder
    named by MUSIC_SSL_DIST; without it they are built here, into a temporary folder."""
    if os.environ.get("MUSIC_SSL_DIST"):
        return Path(os.environ["MUSIC_SSL_DIST"])
    # build.__main__, not build: a checkout's ignored build/ folder imports as an empty namespace package.
    pytest.importorskip(
        "build.__main__", reason="pip install build (in music-ssl[test]) to build the artifacts"
    )
    out = tmp_path_factory.mktemp("dist")
    for extra in ([], ["--wheel", "--outdir", str(out / "from-tree")]):
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), *extra, str(ROOT)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out
