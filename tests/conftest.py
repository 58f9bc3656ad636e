import os
import tempfile

import pytest
import torch

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
