"""The Triton joint kernel against the float64 reference, on CPU tensors in Triton's interpreter.

triton.language wraps its own jitted helpers when triton is imported, so TRITON_INTERPRET=1 has to be set
before that import, for the whole process: tests/conftest.py sets it on machines without CUDA.

Shapes are small and no multiples of the interpreter's 16 x 16 x 16 tiles; segments (C = 6, 8, 12) and
chunks straddle tile edges, so masks on both tile edges and block membership by global index are
exercised, and the gradient products run with their reduction split (which the interpreter does for
outputs of fewer than 8 tiles). Tolerance: relative error (max abs error / max abs value) <= 1e-4 in
float32.
"""

import functools

import pytest
import torch

from music_ssl import implementations, music_loss, music_loss_terms, triton_kernel
from music_ssl.triton_kernel import availability, joint, kernels

pytestmark = pytest.mark.skipif(triton_kernel.triton is None, reason="triton is not installed")

RTOL = 1e-4
interpreter = pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')} "
    "(tests/conftest.py sets TRITON_INTERPRET=1 on machines without CUDA)",
)


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-30)).item()


def _inputs(n, d, scale=2.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z_a = scale * torch.randn(n, d, generator=generator)
    z_b = scale * torch.randn(n, d, generator=generator)
    return z_a, z_b


def _compare_with_reference(z_a, z_b, segment_dim, chunk_rows=None, **options):
    """music_loss through the Triton kernel on z (float32 or lower) vs the reference on z in float64."""
    z32 = [z.clone().requires_grad_() for z in (z_a, z_b)]
    defaults = dict(diag_weight=1.0, off_weight=1.0, inv_weight=1.0, gather_distributed=False)
    defaults.update(options)
    with pytest.MonkeyPatch.context() as patch:
        chunks = functools.partial(joint.triton_joint_terms, chunk_rows=chunk_rows)
        patch.setattr(triton_kernel, "triton_joint_terms", chunks)
        out = music_loss_terms(*z32, segment_dim, implementation="triton", **defaults)
        grads = torch.autograd.grad(out.loss, z32)
    z64 = [z.detach().double().requires_grad_() for z in (z_a, z_b)]
    expected = music_loss_terms(*z64, segment_dim=segment_dim, implementation="reference", **options)
    expected_grads = torch.autograd.grad(expected.loss, z64)
    assert out.loss.dtype == torch.float32
    for name in ("loss", "inv", "diag", "off"):
        want = getattr(expected, name)
        if want.abs().item() > 0:
            assert _rel_err(getattr(out, name), want) <= RTOL, name
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.isfinite(got).all()
        assert _rel_err(got, want) <= RTOL


@interpreter
@pytest.mark.parametrize(
    "n,d,c,chunk_rows",
    [
        (37, 96, 8, None),  # one chunk; 8-wide segments inside 16-wide tiles, 37 = 2 * 16 + 5 samples
        (37, 96, 8, 40),  # chunks of 40 rows: a chunk edge cuts segment 5 and a tile
        (20, 60, 12, None),  # segments of 12 straddle tile edges; D = 60 leaves a 12-column last tile
        (19, 60, 6, 25),  # chunks of 25 rows cut segments and tiles
        (5, 40, 40, None),  # one segment: no off-diagonal blocks, N smaller than a tile
    ],
)
def test_matches_reference_values_and_gradients(n, d, c, chunk_rows):
    off_weight = 1.0 if d // c > 1 else 0.0
    _compare_with_reference(*_inputs(n, d), c, chunk_rows=chunk_rows, off_weight=off_weight)


@interpreter
@pytest.mark.parametrize(
    "temperature,weights",
    [(0.5, (0.5, 2.0, 0.0)), (0.25, (0.0, 0.3, 1.5)), (2.0, (2.0, 0.0, 0.7))],
)
def test_temperatures_and_weights(temperature, weights):
    diag_weight, off_weight, inv_weight = weights
    _compare_with_reference(
        *_inputs(19, 60),
        6,
        chunk_rows=32,
        temperature=temperature,
        diag_weight=diag_weight,
        off_weight=off_weight,
        inv_weight=inv_weight,
    )


@interpreter
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype):
    """Half inputs are upcast before the kernel: the reference sees the same rounded values."""
    z_a, z_b = (z.to(dtype) for z in _inputs(21, 48))
    z = [x.clone().requires_grad_() for x in (z_a, z_b)]
    out = music_loss_terms(*z, segment_dim=8, implementation="triton")
    grads = torch.autograd.grad(out.loss, z)
    z64 = [x.double().requires_grad_() for x in (z_a, z_b)]
    expected = music_loss_terms(*z64, segment_dim=8, implementation="reference")
    expected_grads = torch.autograd.grad(expected.loss, z64)
    assert out.loss.dtype == torch.float32
    assert _rel_err(out.loss, expected.loss) <= RTOL
    for got, want in zip(grads, expected_grads, strict=True):
        assert got.dtype == dtype
        # The gradients are rounded to the input dtype on the way out.
        assert _rel_err(got, want) <= 1e-2


def _joint_reference(p_a, p_b, rows, segment_dim, diag_coef, off_coef, grad_scale):
    """The joint sums and their gradients from autograd in float64, written from the contract."""
    p_a, p_b = (p.detach().double().requires_grad_() for p in (p_a, p_b))
    n, d = p_a.shape
    joint = p_a.T @ p_b / n
    index = torch.arange(d)
    same_segment = (index[:, None] // segment_dim) == (index[None, :] // segment_dim)
    on_diagonal = index[:, None] == index[None, :]
    terms = joint * joint.clamp_min(torch.finfo(joint.dtype).tiny).log()  # x log x, 0 log 0 = 0
    diag_sum = terms[on_diagonal].sum()
    off_sum = terms[~same_segment].sum()
    objective = grad_scale * (diag_coef * diag_sum + off_coef * off_sum)
    grad_a, grad_b = torch.autograd.grad(objective, (p_a, p_b))
    start, stop = rows
    return diag_sum.detach(), off_sum.detach(), grad_a[start:stop], grad_b[start:stop]


def _probabilities(n, d, c, seed=0):
    z_a, z_b = _inputs(n, d, seed=seed)
    return [torch.softmax(z.reshape(n, d // c, c), dim=-1).reshape(n, d) for z in (z_a, z_b)]


@interpreter
@pytest.mark.parametrize("rows,chunk_rows", [((5, 20), 40), ((30, 37), 17), ((11, 11), 40)])
def test_local_rows_and_grad_scale(rows, chunk_rows):
    """A rank's slice of the global batch (also an empty one), with the world-size gradient factor."""
    p_a, p_b = _probabilities(37, 96, 8)
    got = joint.triton_joint_terms(p_a, p_b, rows, 8, 0.3, 0.02, 2.0, True, chunk_rows=chunk_rows)
    want = _joint_reference(p_a, p_b, rows, 8, 0.3, 0.02, 2.0)
    assert _rel_err(got[0], want[0]) <= RTOL
    assert _rel_err(got[1], want[1]) <= RTOL
    for grad, expected in zip(got[2:], want[2:], strict=True):
        assert grad.shape == (rows[1] - rows[0], 96)
        if grad.numel():
            assert _rel_err(grad, expected) <= RTOL


@interpreter
def test_without_gradients():
    p_a, p_b = _probabilities(23, 60, 12)
    diag_sum, off_sum, grad_a, grad_b = joint.triton_joint_terms(p_a, p_b, (0, 23), 12, 1.0, 1.0, 1.0, False)
    want = _joint_reference(p_a, p_b, (0, 23), 12, 1.0, 1.0, 1.0)
    assert grad_a is None and grad_b is None
    assert _rel_err(diag_sum, want[0]) <= RTOL
    assert _rel_err(off_sum, want[1]) <= RTOL

    z_a, z_b = _inputs(23, 60)
    with torch.no_grad():
        out = music_loss_terms(z_a, z_b, segment_dim=12, implementation="triton")
    expected = music_loss(z_a.double(), z_b.double(), segment_dim=12, implementation="reference")
    assert _rel_err(out.loss, expected) <= RTOL


@interpreter
def test_collapse_gives_zero_and_finite_gradients():
    """Identical one-hot codes: P has exact zeros (0 log 0 = 0) and the gradient stays finite."""
    z = torch.zeros(18, 48)
    z[:, ::8] = 30.0
    z_a, z_b = z.clone().requires_grad_(), z.clone().requires_grad_()
    out = music_loss_terms(z_a, z_b, segment_dim=8, implementation="triton")
    out.loss.backward()
    assert abs(out.diag.item()) < 1e-5 and abs(out.off.item()) < 1e-5
    assert torch.isfinite(z_a.grad).all() and torch.isfinite(z_b.grad).all()


@interpreter
def test_gather_distributed_single_process():
    """Without a process group, gather_distributed=True is the single-process loss."""
    _compare_with_reference(*_inputs(13, 48), 8, gather_distributed=True)


@interpreter
@pytest.mark.processes
@pytest.mark.timeout(300)
def test_ddp_gradients_equal_single_process(tmp_path):
    """Two gloo ranks with unequal batches; the spawned workers inherit TRITON_INTERPRET=1."""
    if not torch.distributed.is_available():
        pytest.skip("torch was built without torch.distributed")
    from tests.music_ssl import test_distributed

    test_distributed.test_ddp_gradients_equal_single_process_on_concatenated_batch(tmp_path, (7, 3), "triton")


def test_float64_inputs_use_the_chunked_path():
    """float64 is a verification dtype: implementation='triton' computes it with the chunked kernel in
    float64, and the Triton driver itself refuses anything but float32 probabilities."""
    cpu = torch.device("cpu")
    assert implementations.choose("triton", cpu, torch.float64).name == "chunked"
    assert implementations.choose("auto", torch.device("cuda"), torch.float64).name == "chunked"
    z_a, z_b = (z.double() for z in _inputs(9, 24))
    got = music_loss(z_a, z_b, segment_dim=6, implementation="triton")
    want = music_loss(z_a, z_b, segment_dim=6, implementation="reference")
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    p_a, p_b = (p.double() for p in _probabilities(9, 24, 6))
    with pytest.raises(TypeError, match="must be float32 probabilities, got torch.float64"):
        joint.triton_joint_terms(p_a, p_b, (0, 9), 6, 1.0, 1.0, 1.0, True)


def test_availability_follows_the_mode_of_import(monkeypatch):
    """The kernels run interpreted exactly when TRITON_INTERPRET=1 was set at import (tests/conftest.py
    sets it on machines without CUDA); setting it later does not switch modes, and the message says so."""
    cpu = torch.device("cpu")
    assert not triton_kernel.is_available(torch.device("meta"))
    assert "meta" in triton_kernel.unavailable_reason(torch.device("meta"))
    if triton_kernel.interpreter_active():
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        monkeypatch.setattr(availability, "interpreter_defect", lambda *versions: "")
        assert triton_kernel.is_available(cpu)
        assert triton_kernel.unavailable_reason(cpu) == ""
        # auto never picks the interpreter.
        assert implementations.choose("auto", cpu, torch.float32).name == "chunked"

    # As on a machine where a recent triton was imported without the flag.
    monkeypatch.setattr(availability.triton, "__version__", "3.8.0")
    monkeypatch.setattr(availability, "interpreted", lambda function: False)
    monkeypatch.setattr(availability, "kernels_interpreted", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not triton_kernel.is_available(cpu)
    assert "TRITON_INTERPRET=1" in triton_kernel.unavailable_reason(cpu)
    assert implementations.choose("auto", cpu, torch.float32).name == "chunked"
    z = torch.randn(4, 16)
    with pytest.raises(ValueError, match="implementation='triton' cannot run here: tensors are on cpu"):
        music_loss(z, z, segment_dim=8, implementation="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not triton_kernel.is_available(cpu)
    assert "before the first import of triton" in triton_kernel.unavailable_reason(cpu)


def test_interpreter_of_old_triton_under_new_numpy_is_refused(monkeypatch):
    """Triton < 3.7's interpreter cannot run loops under numpy >= 2.4: a clear error, not a crash in it."""
    assert "triton-lang/triton#9171" in availability.interpreter_defect("3.6.0", "2.4.6")
    assert availability.interpreter_defect("3.6.0", "2.3.5") == ""
    assert "cannot run these kernels" in availability.interpreter_defect("3.0.0", "1.26.4")
    assert "cannot run these kernels" in availability.interpreter_defect("3.1.0", "1.26.4")
    assert availability.interpreter_defect("3.7.0", "2.5.0") == ""
    assert availability.interpreter_defect("3.8.0+git4a5b", "2.4.0") == ""
    if not triton_kernel.interpreter_active():
        return
    import numpy

    monkeypatch.setattr(availability.triton, "__version__", "3.6.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.6")
    assert "install triton >= 3.7 or numpy < 2.4" in triton_kernel.unavailable_reason("cpu")
    z = torch.randn(4, 16)
    with pytest.raises(ValueError, match=r"cannot run here: Triton 3\.6\.0's interpreter"):
        music_loss(z, z, segment_dim=8, implementation="triton")


def test_triton_older_than_3_is_refused(monkeypatch):
    monkeypatch.setattr(availability.triton, "__version__", "2.1.0")
    for device in ("cpu", "cuda"):
        reason = triton_kernel.unavailable_reason(device)
        assert "triton 2.1.0 is too old: the kernel needs triton >= 3.0" in reason
    assert implementations.choose("auto", torch.device("cuda"), torch.float32).name == "chunked"


def test_mixed_import_modes_are_refused(monkeypatch):
    """triton imported in one mode and the kernels wrapped in the other cannot launch anywhere."""
    kernels_interpreted = availability.kernels_interpreted()
    monkeypatch.setattr(availability.triton, "__version__", "3.8.0")
    monkeypatch.setattr(availability, "language_interpreted", lambda: not kernels_interpreted)
    for device in ("cpu", "cuda"):
        assert "TRITON_INTERPRET changed between the import" in triton_kernel.unavailable_reason(device)


def test_split_reduction_plan(monkeypatch):
    """GPU plan: split the reduction only where the output has fewer tiles than the GPU has SMs."""
    monkeypatch.setattr(joint, "multiprocessors", lambda device: 132)
    plan = joint.gpu_split_plan(torch.device("cuda"))
    # dL/dp_a of a 512-row chunk at N = 256, D = 8192: 8 output tiles, 16 pieces of 512.
    assert joint.k_splits(256, 512, 8192, plan) == (16, 512)
    # N = 2048: 256 tiles fill the GPU already.
    assert joint.k_splits(2048, 2048, 8192, plan) == (1, 8192)
    assert joint.k_splits(256, 8192, 512, plan) == (1, 512)
    for n, d in [(256, 8192), (2048, 8192), (4096, 16384), (8, 96)]:
        rows = joint.default_chunk_rows(n, d)
        assert rows == d or (rows % 256 == 0 and 512 <= rows <= 4096)


def test_autotuning_leaves_out_the_tiles_that_spill_in_tf32x3():

    class Config:  # triton.Config's fields that the pruning reads
        def __init__(self, m, n, k, warps, stages):
            self.kwargs = {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}
            self.num_warps, self.num_stages = warps, stages

    every = [Config(*tiles) for tiles in kernels.GPU_CONFIGS]
    assert kernels.prune_for_precision(every, {}, INPUT_PRECISION="tf32") == every
    kept = kernels.prune_for_precision(every, {}, INPUT_PRECISION="tf32x3")
    assert kept and len(kept) == len(every) - len(kernels.SPILL_WITH_TF32X3)
    assert all(kernels.config_tuple(c) not in kernels.SPILL_WITH_TF32X3 for c in kept)
