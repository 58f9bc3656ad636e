"""The Triton path against the float64 reference at full size: relative error of the loss, its three terms
and both input gradients, under each precision of the kernel's float32 products.

The kernel follows torch's float32 matmul precision: "tf32" runs `music_loss(..., implementation="triton")`
under torch.set_float32_matmul_precision("high") (TF32 tensor cores on NVIDIA GPUs from Ampere on),
"ieee" under "highest" (exact float32 products, torch's default). Under Triton's interpreter products are
exact either way.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable

import torch

from benchmarks.loss_methods import DTYPES, make_views, matmul_precision, release_memory

# torch's float32 matmul precision for each precision checked. "ieee" is torch's "highest": float32
# accuracy, which the kernel computes as tf32x3 on GPUs with TF32 tensor cores (IEEE products elsewhere).
PRECISIONS = {"tf32": "high", "ieee": "highest"}
# Stated tolerances (relative error vs the float64 reference). TF32 operands carry 10 mantissa bits; the
# kernel rounds them to nearest before the tensor cores (which would truncate them). The float64 emulation
# of the check's shapes (`benchmarks/tf32_emulation.py`, held to a third of these by the tests) predicts at
# most 1.1e-6 on the terms and 4.4e-4 on the gradients with rounding; truncated operands would give about
# 6e-4 on the terms, outside 1e-4.
TOLERANCE = {
    ("tf32", "terms"): 1e-4,
    ("tf32", "grads"): 2e-3,
    ("ieee", "terms"): 1e-4,
    ("ieee", "grads"): 1e-4,
}
# bfloat16 gradients are rounded to bfloat16 on the way out (8 mantissa bits).
BF16_GRAD_TOLERANCE = 1e-2
TERMS = ("loss", "inv", "diag", "off")


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max absolute error over the max absolute value of `want`, in float64."""
    got, want = got.detach().double(), want.detach().double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


def _triton(z_a, z_b, c: int, precision: str):
    from music_ssl import music_loss_terms

    z = [x.clone().requires_grad_() for x in (z_a, z_b)]
    with matmul_precision(PRECISIONS[precision]):
        out = music_loss_terms(*z, segment_dim=c, implementation="triton")
        grads = torch.autograd.grad(out.loss, z)
    return {name: getattr(out, name).detach() for name in TERMS}, grads


def check_one(
    n: int, d: int, c: int, dtype_name: str, precision: str, device: str = "cuda", repeat: bool = False
) -> dict:
    """One row: the errors of the Triton path at (N, D, C) in one dtype and precision, and whether all are
    within `TOLERANCE`; with ``repeat``, also whether a second run gives the same bits (a race between
    programs, or an uninitialized read, would not)."""
    from music_ssl import music_loss_terms

    z_a, z_b = make_views(n, d, DTYPES[dtype_name], device)
    terms, grads = _triton(z_a, z_b, c, precision)
    same_bits = None
    if repeat:
        again, grads_again = _triton(z_a, z_b, c, precision)
        same_bits = all(torch.equal(terms[k], again[k]) for k in TERMS) and all(
            torch.equal(g, h) for g, h in zip(grads, grads_again, strict=True)
        )
        del again, grads_again
    z64 = [x.double().requires_grad_() for x in (z_a, z_b)]
    expected = music_loss_terms(*z64, segment_dim=c, implementation="reference")
    expected_grads = torch.autograd.grad(expected.loss, z64)
    errors = {name: relative_error(value, getattr(expected, name)) for name, value in terms.items()}
    errors["grad_z_a"] = relative_error(grads[0], expected_grads[0])
    errors["grad_z_b"] = relative_error(grads[1], expected_grads[1])
    grad_tolerance = TOLERANCE[(precision, "grads")]
    if dtype_name == "bfloat16":
        grad_tolerance = max(grad_tolerance, BF16_GRAD_TOLERANCE)
    ok = all(errors[k] <= TOLERANCE[(precision, "terms")] for k in terms) and all(
        errors[k] <= grad_tolerance for k in ("grad_z_a", "grad_z_b")
    )
    row = {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision, "ok": ok, **errors}
    if repeat:
        row["bitwise_repeat"] = same_bits
        row["ok"] = ok and same_bits
    return row


def planned_checks(
    shapes: list[tuple[int, int, int]], odd_shapes: list[tuple[int, int, int]] = ()
) -> list[tuple[int, int, int, str, str, bool]]:
    """The cases `run_checks` runs, in its order: (N, D, C, dtype, precision, run twice)."""
    cases = [(n, d, c, "float32", p, True) for n, d, c in odd_shapes for p in ("tf32", "ieee")]
    cases += [(n, d, c, dt, "tf32", False) for n, d, c in shapes for dt in DTYPES]
    cases += [(*shapes[0], dt, "ieee", False) for dt in DTYPES] if shapes else []
    return cases


def check_key(row: dict) -> str:
    """A check row's (or planned case's) name in the report: N x D x C dtype precision."""
    return f"{row['n']}x{row['d']}x{row['segment_dim']} {row['dtype']} {row['precision']}"


def run_checks(
    shapes: list[tuple[int, int, int]],
    device: str,
    deadline: float,
    rows: list[dict],
    save: Callable[[], None],
    odd_shapes: list[tuple[int, int, int]] = (),
) -> list[dict]:
    """Appends a row per case to `rows` and calls save() after each: the odd shapes first (a reduction
    that ends in a partial tile, rows whose length is no multiple of 16, segments across tiles), float32,
    both precisions, each run twice and compared bit for bit; then every shape with TF32 products in both
    dtypes, then float32-accurate products on the first shape in both dtypes. A case that would start
    after `deadline` (time.perf_counter()) is skipped."""
    for n, d, c, dtype_name, precision, repeat in planned_checks(shapes, odd_shapes):
        base = {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision}
        if time.perf_counter() > deadline:
            rows.append({**base, "ok": None, "error": "skipped (time budget)"})
            continue
        try:
            row = check_one(n, d, c, dtype_name, precision, device, repeat)
        except torch.cuda.OutOfMemoryError:
            row = {**base, "ok": None, "error": "OOM"}
        except Exception as error:  # Report and go on: one broken case must not lose the benchmark.
            traceback.print_exc()
            row = {**base, "ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        release_memory()
        rows.append(row)
        save()
        print("check", json.dumps(row), flush=True)
    return rows
