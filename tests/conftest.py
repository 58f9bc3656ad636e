import os

import pytest
import torch

# Triton's interpreter runs the GPU kernels on CPU tensors, so CI tests them without a GPU. The flag must
# be set before triton is first imported (triton.language wraps its helpers at import time).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
