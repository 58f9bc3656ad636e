"""The convergence check on the CPU: the quality benchmark's CPU profile model trained with "chunked"
follows the reference's loss curve step by step in float64, and a kernel whose gradient is slightly off
does not (benchmarks/convergence.py; the GPU check runs the same on CUDA in float32 and bf16)."""

import pytest
import torch

from benchmarks import convergence
from music_ssl import chunked, implementations

STEPS, BATCH = 40, 32


@pytest.fixture(scope="module")
def reference_curve() -> list[float]:
    return convergence.loss_curve("reference", steps=STEPS, batch_size=BATCH, autocast="float64")


@pytest.mark.timeout(600)
def test_chunked_training_follows_the_reference_step_by_step(reference_curve):
    curve = convergence.loss_curve("chunked", steps=STEPS, batch_size=BATCH, autocast="float64")
    verdict = convergence.compare(curve, reference_curve, "float64")
    assert verdict["ok"], verdict
    assert curve[-1] < curve[0]  # it trains: the loss falls
    assert verdict["max_step_difference"] < 1e-9  # far inside the tolerance, as float64 rounding leaves it


def _skewed_joint_terms(*args):
    """The chunked kernel with the joint terms' gradients 2 % too large: a subtly wrong implementation."""
    diag, off, grad_a, grad_b = chunked.chunked_joint_terms(*args)
    return diag, off, None if grad_a is None else 1.02 * grad_a, None if grad_b is None else 1.02 * grad_b


@pytest.mark.timeout(600)
def test_a_slightly_wrong_gradient_leaves_the_curve(reference_curve):
    implementations.register(implementations.fused_implementation("skewed", _skewed_joint_terms))
    try:
        curve = convergence.loss_curve("skewed", steps=STEPS, batch_size=BATCH, autocast="float64")
    finally:
        implementations.unregister("skewed")
    verdict = convergence.compare(curve, reference_curve, "float64")
    assert not verdict["ok"], verdict
    assert curve[0] == pytest.approx(reference_curve[0], rel=1e-12)  # the values agree; the training does not


def test_the_windows_judge_float32_and_a_step_judges_float64():
    reference = [-2.0] * 40
    noisy = [-2.0 + (0.05 if step % 2 else -0.05) for step in range(40)]  # step noise that averages out
    assert convergence.compare(noisy, reference, "float32")["ok"]
    assert not convergence.compare(noisy, reference, "float64")["ok"]
    drifted = [-2.0 + 0.001 * step for step in range(40)]  # a drift that the windows see
    assert not convergence.compare(drifted, reference, "float32")["ok"]
    assert torch.isfinite(torch.tensor(convergence.compare(drifted, reference)["max_window_difference"]))
