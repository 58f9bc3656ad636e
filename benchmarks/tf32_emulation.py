"""The Triton kernel's TF32 error, predicted on the CPU: its products emulated in float64 with the operands
as TF32 tensor cores see them, rounded (what the kernel feeds them) or truncated (what they would read
from unrounded float32), against the same computation with exact operands.

    python -m benchmarks.tf32_emulation                          # the GPU check's accuracy shapes
    python -m benchmarks.tf32_emulation --shapes 256x8192x32 --out docs/results/loss_benchmarks/tf32_emulation

Everything but the three N x D x D products is the fused implementation's own code in float64
(`music_ssl.fused`: softmax, invariance term, chain rule); the joint's products, epilogue and gradient
products are written out densely in float64, with every product operand passed through TF32 first: the
probabilities and dL/dP. Accumulation is exact here and float32 on the GPU, which adds about 1e-6
relative; the first GPU run measures the rest (`benchmarks/triton_accuracy.py`, whose tolerances these
predictions are held against).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.loss_methods import make_views
from benchmarks.triton_accuracy import TERMS, TOLERANCE, relative_error
from music_ssl import fused
from music_ssl.options import MUSICOptions
from music_ssl.triton_kernel.joint import to_tf32_

SHAPES = ((2048, 8192, 32), (256, 8192, 32), (2048, 8160, 80))
# How a float64 value reaches the tensor cores: as float32 (the kernel's operands), then as TF32.
OPERANDS: dict[str, Callable[[Tensor], Tensor]] = {
    "exact": lambda x: x,
    "ieee": lambda x: x.float().double(),
    "tf32_rounded": lambda x: to_tf32_(x.float()).double(),
    "tf32_truncated": lambda x: to_tf32_(x.float(), rounding=False).double(),
}


def dense_joint_terms(operand: Callable[[Tensor], Tensor]):
    """The joint kernel's contract (`music_ssl.implementations.JointKernel`), dense in float64, every
    product operand passed through ``operand``."""

    def joint(p_a, p_b, local_rows, segment_dim, diag_coef, off_coef, grad_scale, compute_grad):
        n, d = p_a.shape
        joint = operand(p_a).T @ operand(p_b) / n
        log_joint = joint.clamp_min(torch.finfo(torch.float32).tiny).log()
        segment = torch.arange(d) // segment_dim
        same_segment = segment[:, None] == segment[None, :]
        on_diagonal = torch.eye(d, dtype=torch.bool)
        xlogx = joint * log_joint
        diag_sum, off_sum = xlogx[on_diagonal].sum(), xlogx[~same_segment].sum()
        del xlogx
        if not compute_grad:
            return diag_sum, off_sum, None, None
        coef = torch.full_like(joint, off_coef)
        coef[same_segment] = 0.0
        coef[on_diagonal] = diag_coef
        grad_joint = operand(coef.mul_(log_joint.add_(1.0)))
        start, stop = local_rows
        scale = grad_scale / n
        grad_a = scale * operand(p_b[start:stop]) @ grad_joint.T
        grad_b = scale * operand(p_a[start:stop]) @ grad_joint
        return diag_sum, off_sum, grad_a, grad_b

    return joint


@functools.cache
def _emulated(operand: str) -> fused.FusedLoss:
    """The fused operator with the dense kernel of ``operand`` (an operator of its own per operand)."""
    return fused.FusedLoss(f"tf32_emulation_{operand}", dense_joint_terms(OPERANDS[operand]))


def _loss_and_gradients(z_a: Tensor, z_b: Tensor, segment_dim: int, operand: str):
    z = [x.detach().double().requires_grad_() for x in (z_a, z_b)]
    options = MUSICOptions(segment_dim, gather_distributed=False)
    parts = _emulated(operand)(tuple(z), 2, options, True)
    grads = torch.autograd.grad(parts.loss, z)
    return {name: getattr(parts, name).detach() for name in TERMS}, grads


def predicted_errors(n: int, d: int, c: int, operands: tuple[str, ...] = ("tf32_rounded", "tf32_truncated")):
    """Relative errors (as `triton_accuracy` measures them) of the loss, its terms and both input gradients
    for each way of passing operands, at (N, D, C) on the GPU check's float32 views."""
    z_a, z_b = make_views(n, d, torch.float32, "cpu")
    want_terms, want_grads = _loss_and_gradients(z_a, z_b, c, "exact")
    rows = []
    for operand in operands:
        terms, grads = _loss_and_gradients(z_a, z_b, c, operand)
        errors = {name: relative_error(terms[name], want_terms[name]) for name in TERMS}
        errors["grad_z_a"] = relative_error(grads[0], want_grads[0])
        errors["grad_z_b"] = relative_error(grads[1], want_grads[1])
        precision = "ieee" if operand == "ieee" else "tf32"
        within = all(errors[k] <= TOLERANCE[(precision, "terms")] for k in TERMS) and all(
            errors[k] <= TOLERANCE[(precision, "grads")] for k in ("grad_z_a", "grad_z_b")
        )
        rows.append(
            {"n": n, "d": d, "segment_dim": c, "operands": operand, "within_tolerance": within, **errors}
        )
    return rows


def table(rows: list[dict]) -> str:
    keys = (*TERMS, "grad_z_a", "grad_z_b")
    lines = [
        "| N | D | C | operands | " + " | ".join(keys) + " | within the GPU check's tolerance |",
        "|---:|---:|---:|---|" + "---:|" * len(keys) + "---|",
    ]
    for row in rows:
        errors = " | ".join(f"{row[k]:.1e}" for k in keys)
        lines.append(
            f"| {row['n']} | {row['d']} | {row['segment_dim']} | {row['operands']} | {errors} "
            f"| {'yes' if row['within_tolerance'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tf32_emulation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--shapes",
        default=",".join("x".join(map(str, shape)) for shape in SHAPES),
        help="comma-separated NxDxC (default: the GPU check's accuracy shapes)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write tf32_emulation.json and .md here")
    args = parser.parse_args(argv)
    rows = []
    for text in args.shapes.split(","):
        n, d, c = (int(part) for part in text.lower().split("x"))
        rows += predicted_errors(n, d, c)
        print(table(rows[-2:]), flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tf32_emulation.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "tf32_emulation.md").write_text(table(rows))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
