"""The choice of implementation for CUDA tensors, exercised without a GPU.

A user on a GPU reaches code that CPU runs never touch: `implementation="auto"` asks whether the Triton
kernel can run, which imports `music_ssl.triton_kernel` and triton itself. These tests drive that choice
for a CUDA device, with triton importable, absent, too old and failing to compile, through the package as
installed (a missing module or an unguarded import fails here). CUDA tensors are fake ones
(FakeTensorMode): shapes and devices propagate, nothing runs.
"""

import contextlib
import dataclasses
import functools
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import music_ssl
from music_ssl import fallback, implementations, music_loss, triton_kernel

CUDA = torch.device("cuda")


@functools.cache
def fake_cuda_runs() -> bool:
    """Whether this torch runs autograd on fake CUDA tensors on a machine without a CUDA driver (torch 2.4
    aborts in the CUDA runtime; recent releases do not)."""
    probe = "import torch\nfrom torch._subclasses.fake_tensor import FakeTensorMode\n"
    probe += (
        "with FakeTensorMode():\n    torch.randn(2, 4, device='cuda', requires_grad=True).log_softmax(-1)"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=300).returncode == 0


def _loss_on_cuda(seen: dict) -> None:
    """The loss of the child's MUSICLoss() on fake CUDA tensors is a CUDA scalar (where torch makes them)."""
    if fake_cuda_runs():
        assert seen["loss"] == ["cuda:0", []]
    else:
        assert "loss" not in seen


def _in_fresh_process(tmp_path, scenario: str, env: dict[str, str] | None = None) -> dict:
    """Runs the public API on fake CUDA tensors in a new interpreter after ``scenario`` (Python that sets
    up triton), from an empty folder so that nothing is imported from the checkout; returns what it saw."""
    script = textwrap.dedent(
        """
        import json, sys
        {scenario}
        import torch
        from torch._subclasses.fake_tensor import FakeTensorMode

        import music_ssl
        from music_ssl import MUSICLoss, implementations

        seen = {{"file": music_ssl.__file__}}
        cuda = torch.device("cuda")

        def chosen(*args):
            return implementations.choose(*args).name

        seen["auto"] = chosen("auto", cuda, torch.float32)
        try:
            seen["triton"] = chosen("triton", cuda, torch.float32)
        except ValueError as error:
            seen["triton"] = "ValueError: " + str(error)
        implementations.AUTO_USES_TRITON = True  # as after the GPU check has passed
        seen["auto_once_verified"] = chosen("auto", cuda, torch.float32)
        if {fake_cuda}:
            with FakeTensorMode():
                z_a, z_b = (torch.randn(8, 64, device=cuda, requires_grad=True) for _ in range(2))
                loss = MUSICLoss(segment_dim=16)(z_a, z_b)
                seen["loss"] = [str(loss.device), list(loss.shape)]
        print(json.dumps(seen))
        """
    ).format(scenario=textwrap.dedent(scenario), fake_cuda=fake_cuda_runs())
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TRITON_INTERPRET": "0", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def triton_runs_everywhere(monkeypatch, auto_on_cpu: bool = False) -> None:
    """The registry's Triton entry as where triton can run (the choice only; nothing launches); with
    ``auto_on_cpu``, CPU tensors stand in for CUDA ones: "auto" may pick it for them."""
    entry = implementations.REGISTRY["triton"]
    devices = (*entry.auto_devices, "cpu") if auto_on_cpu else entry.auto_devices
    triton = dataclasses.replace(entry, unavailable_reason=lambda device: "", auto_devices=devices)
    monkeypatch.setitem(implementations.REGISTRY, "triton", triton)


def chosen(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """The name of what `implementations.choose` picks."""
    return implementations.choose(requested, device, dtype).name


def test_auto_on_cuda_runs_chunked_until_the_kernel_has_passed_the_gpu_check(monkeypatch):
    """The Triton kernel has only run in Triton's interpreter: auto does not make it the default on GPUs."""
    triton_runs_everywhere(monkeypatch)
    assert not implementations.AUTO_USES_TRITON
    assert chosen("auto", CUDA, torch.float32) == "chunked"
    assert chosen("auto", CUDA, torch.bfloat16) == "chunked"
    assert chosen("triton", CUDA, torch.float32) == "triton"
    monkeypatch.setattr(implementations, "AUTO_USES_TRITON", True)
    assert chosen("auto", CUDA, torch.float32) == "triton"
    assert chosen("auto", CUDA, torch.float64) == "chunked"
    assert chosen("auto", torch.device("cpu"), torch.float32) == "chunked"


def test_triton_importable(tmp_path):
    seen = _in_fresh_process(tmp_path, "")
    assert seen["file"] == music_ssl.__file__  # the child imports the package this suite tests
    _loss_on_cuda(seen)
    assert seen["auto"] == "chunked"
    if triton_kernel.triton is None:
        pytest.skip(f"the rest needs triton importable: {triton_kernel.unavailable_reason('cuda')}")
    assert seen["triton"] == "triton"
    assert seen["auto_once_verified"] == "triton"


def test_triton_absent(tmp_path):
    seen = _in_fresh_process(tmp_path, "sys.modules['triton'] = None  # import triton raises ImportError")
    _loss_on_cuda(seen)
    assert seen["auto"] == seen["auto_once_verified"] == "chunked"
    assert seen["triton"].startswith("ValueError: implementation='triton' cannot run here: triton cannot be")
    assert "install triton" in seen["triton"]


def test_triton_too_old(tmp_path):
    if triton_kernel.triton is None:
        pytest.skip(f"needs triton importable: {triton_kernel.unavailable_reason('cuda')}")
    # The real module with an old release number (torch itself imports triton, so it must be real).
    old = "import triton; triton.__version__ = '2.3.1'"
    seen = _in_fresh_process(tmp_path, old)
    _loss_on_cuda(seen)
    assert seen["auto"] == seen["auto_once_verified"] == "chunked"
    assert "triton 2.3.1 is too old: the kernel needs triton >= 3.0" in seen["triton"]


@pytest.fixture
def verified_triton(monkeypatch, no_failures):
    """auto as on a GPU where the kernel has passed the GPU check; the kernel is replaced per test. CPU
    tensors stand in for CUDA ones (auto picks Triton on them until it has failed; the kernel is a stub)."""
    monkeypatch.setattr(implementations, "AUTO_USES_TRITON", True)
    triton_runs_everywhere(monkeypatch, auto_on_cpu=True)

    def use(kernel):
        monkeypatch.setattr("music_ssl.triton_kernel.joint.triton_joint_terms", kernel)

    return use


def _inputs():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(16, 64, generator=generator, requires_grad=True) for _ in range(2)]


class CompilationError(Exception):
    """Stands in for triton.compiler.errors.CompilationError."""


CompilationError.__module__ = "triton.compiler.errors"


def test_auto_falls_back_when_the_kernel_fails_to_compile(verified_triton):
    def fail(*args):
        raise CompilationError("at 12:4: unsupported layout for sm_120 (simulated)")

    verified_triton(fail)
    z_a, z_b = _inputs()
    with pytest.warns(RuntimeWarning, match=r"CompilationError: at 12:4.*uses 'chunked' from now on"):
        loss = music_loss(z_a, z_b, segment_dim=16)
    torch.testing.assert_close(loss, music_loss(z_a, z_b, segment_dim=16, implementation="chunked"))
    assert chosen("auto", CUDA, torch.float32) == "chunked"


# The tail torch appends to every CUDA error (c10/cuda/CUDAException.cpp): it names a launch and compiling.
_TORCH_CUDA_TAIL = (
    "\nCUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below "
    "might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\nCompile with "
    "`TORCH_USE_CUDA_DSA` to enable device-side assertions.\n"
)
# torch's CUDA errors as torch raises them (AcceleratorError since torch 2.8, RuntimeError before).
_ACCELERATOR_ERROR = getattr(torch, "AcceleratorError", RuntimeError)
TORCH_CUDA_ERRORS = {
    "illegal_memory_access": _ACCELERATOR_ERROR(
        "CUDA error: an illegal memory access was encountered\nSearch for `cudaErrorIllegalAddress' in "
        "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html for more information."
        + _TORCH_CUDA_TAIL
    ),
    "device_side_assert": _ACCELERATOR_ERROR(
        "CUDA error: device-side assert triggered\nSearch for `cudaErrorAssert' in "
        "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html for more information."
        + _TORCH_CUDA_TAIL
    ),
    "out_of_memory": torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139.72 GiB of which "
        "1.05 GiB is free. Of the allocated memory 136.10 GiB is allocated by PyTorch, and 1.20 GiB is "
        "reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
    ),
    # Triton's launcher reports a fault of its own kernel this way: the kernel is wrong, not unbuildable.
    "triton_illegal_memory_access": RuntimeError(
        "Triton Error [CUDA]: an illegal memory access was encountered"
    ),
}


@pytest.mark.parametrize(
    "error",
    [*TORCH_CUDA_ERRORS.values(), ValueError("bad input (simulated)"), TypeError("bad dtype (simulated)")],
    ids=[*TORCH_CUDA_ERRORS, "value_error", "type_error"],
)
@pytest.mark.parametrize("implementation", ["auto", "triton"])
def test_other_errors_propagate_and_change_no_later_choice(verified_triton, error, implementation):
    def fail(*args):
        raise error

    verified_triton(fail)
    z_a, z_b = _inputs()
    with pytest.raises(type(error)) as raised:
        music_loss(z_a, z_b, segment_dim=16, implementation=implementation)
    assert raised.value is error  # as raised, not wrapped
    assert implementations.FAILURES == {}
    assert chosen("auto", CUDA, torch.float32) == "triton"


@pytest.mark.parametrize(
    ("error", "falls_back"),
    [
        (CompilationError("x"), True),
        (RuntimeError("Triton Error [CUDA]: invalid argument"), True),
        (RuntimeError("PTX assembly failed for sm_120"), True),
        (subprocess.CalledProcessError(255, ["ptxas", "kernel.ptx"]), True),
        (torch.OutOfMemoryError("CUDA out of memory"), False),
        (ValueError("triton kernel input"), False),
        (TypeError("triton kernel input"), False),
        (KeyError("loss"), False),
        *((error, False) for error in TORCH_CUDA_ERRORS.values()),
        # A compile failure whose text mentions a launch is still a compile failure.
        (RuntimeError("PassManager::run failed while compiling for launch"), True),
    ],
)
def test_what_counts_as_a_compile_or_launch_failure(error, falls_back):
    assert fallback.is_compile_or_launch_failure(error) is falls_back


def test_a_batch_beyond_the_kernels_int32_offsets_runs_chunked_under_auto(verified_triton, monkeypatch):
    """N x D at or above 2**31 (here: the limit lowered to 500 elements): "auto" computes it with chunked,
    without recording a failure; an explicit "triton" is a clear error naming chunked."""

    def never(*args):
        raise AssertionError("the Triton kernel ran on an input beyond its offsets")

    verified_triton(never)
    monkeypatch.setattr(implementations.REGISTRY["triton"].loss.fallback, "max_elements", 500)
    z_a, z_b = _inputs()  # 16 x 64 = 1024 elements
    torch.testing.assert_close(
        music_loss(z_a, z_b, segment_dim=16), music_loss(z_a, z_b, segment_dim=16, implementation="chunked")
    )
    assert implementations.FAILURES == {}
    with pytest.raises(
        ValueError, match=r"implementation='triton' takes at most 500 elements.*\(16, 64\).*'chunked'"
    ):
        music_loss(z_a, z_b, segment_dim=16, implementation="triton")


def test_the_kernels_launch_on_the_tensors_device(monkeypatch):
    """Triton launches on the current CUDA device: the launches run inside torch.cuda.device(p.device)."""
    from music_ssl.triton_kernel import joint

    entered = []
    monkeypatch.setattr(
        torch.cuda, "device", lambda device: entered.append(device) or contextlib.nullcontext()
    )
    with joint.on_device(torch.device("cuda", 1)):
        pass
    assert entered == [torch.device("cuda", 1)]
    with joint.on_device(torch.device("cpu")):  # the interpreter's tensors: no CUDA context at all
        pass
    assert entered == [torch.device("cuda", 1)]
