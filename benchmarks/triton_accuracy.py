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
# The gate: the kernel's error against float64 may be at most TORCH_FACTOR times the error of torch's own
# computation of the loss (the reference implementation) in the same dtype and matmul precision on the same
# inputs, and no less than ERROR_FLOOR is asked of either (a float32 rounding of the largest value). So the
# tolerance is the hardware's: TF32 products get TF32's error, float32 products float32's.
TORCH_FACTOR = 4.0
ERROR_FLOOR = 2.0**-23
# What the float64 emulation of TF32 products (`benchmarks/tf32_emulation.py`) is held to. TF32 operands
# carry 10 mantissa bits; the kernel rounds them to nearest before the tensor cores (which would truncate
# them). The emulation of the check's shapes (held to a third of these by the tests) predicts at most
# 1.1e-6 on the terms and 4.4e-4 on the gradients with rounding; truncated operands would give about 6e-4
# on the terms.
TOLERANCE = {
    ("tf32", "terms"): 1e-4,
    ("tf32", "grads"): 2e-3,
    ("ieee", "terms"): 1e-4,
    ("ieee", "grads"): 1e-4,
}
TERMS = ("loss", "inv", "diag", "off")
# The multi-view case of the odd shape: four views, the first two global, every pair with a global one.
MULTI_VIEW = (4, 2)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max absolute error over the max absolute value of `want`, in float64."""
    got, want = got.detach().double(), want.detach().double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


def _loss_and_gradients(views, c: int, precision: str, implementation: str, num_global: int):
    from music_ssl import music_loss_terms

    z = [x.clone().requires_grad_() for x in views]
    with matmul_precision(PRECISIONS[precision]):
        out = music_loss_terms(z, segment_dim=c, implementation=implementation, num_global=num_global)
        grads = torch.autograd.grad(out.loss, z)
    return {name: getattr(out, name).detach() for name in TERMS}, grads


def _errors(terms: dict, grads, expected: dict, expected_grads) -> dict:
    errors = {name: relative_error(value, expected[name]) for name, value in terms.items()}
    for index, (got, want) in enumerate(zip(grads, expected_grads, strict=True)):
        errors[f"grad_z_{'ab'[index] if len(grads) == 2 else index}"] = relative_error(got, want)
    return errors


def check_one(
    n: int,
    d: int,
    c: int,
    dtype_name: str,
    precision: str,
    device: str = "cuda",
    repeat: bool = False,
    views: int = 2,
) -> dict:
    """One row: the errors of the Triton path at (N, D, C) in one dtype and precision against float64, and
    torch's own (the reference implementation's, same dtype, precision and inputs); within the gate when
    every error is at most TORCH_FACTOR times torch's (or ERROR_FLOOR). With ``repeat``, also whether a
    second run gives the same bits (a race between programs, or an uninitialized read, would not). With
    ``views`` = 4, two global views and two local ones (`MULTI_VIEW`)."""
    z_a, z_b = make_views(n, d, DTYPES[dtype_name], device)
    inputs = [z_a, z_b] if views == 2 else [z_a, z_b, *make_views(n, d, DTYPES[dtype_name], device, seed=1)]
    num_global = 2
    terms, grads = _loss_and_gradients(inputs, c, precision, "triton", num_global)
    same_bits = None
    if repeat:
        again, grads_again = _loss_and_gradients(inputs, c, precision, "triton", num_global)
        same_bits = all(torch.equal(terms[k], again[k]) for k in TERMS) and all(
            torch.equal(g, h) for g, h in zip(grads, grads_again, strict=True)
        )
        del again, grads_again
    exact, exact_grads = _loss_and_gradients([x.double() for x in inputs], c, "ieee", "reference", num_global)
    errors = _errors(terms, grads, exact, exact_grads)
    torch_terms, torch_grads = _loss_and_gradients(inputs, c, precision, "reference", num_global)
    torch_errors = _errors(torch_terms, torch_grads, exact, exact_grads)
    ratio = max(errors[k] / max(torch_errors[k], ERROR_FLOOR) for k in errors)
    row = {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision, "views": views}
    row |= {
        **errors,
        "torch_errors": torch_errors,
        "worst_ratio_to_torch": ratio,
        "ok": ratio <= TORCH_FACTOR,
    }
    if repeat:
        row["bitwise_repeat"] = same_bits
        row["ok"] = row["ok"] and same_bits
    return row


def planned_checks(
    shapes: list[tuple[int, int, int]], odd_shapes: list[tuple[int, int, int]] = ()
) -> list[tuple[int, int, int, str, str, bool]]:
    """The cases `run_checks` runs, in its order: (N, D, C, dtype, precision, run twice, views)."""
    cases = [(n, d, c, "float32", p, True, 2) for n, d, c in odd_shapes for p in ("tf32", "ieee")]
    cases += [(n, d, c, "float32", "tf32", False, MULTI_VIEW[0]) for n, d, c in odd_shapes]
    cases += [(n, d, c, dt, "tf32", False, 2) for n, d, c in shapes for dt in DTYPES]
    cases += [(*shapes[0], dt, "ieee", False, 2) for dt in DTYPES] if shapes else []
    return cases


def check_key(row: dict) -> str:
    """A check row's (or planned case's) name in the report: N x D x C dtype precision [V views]."""
    views = f" {row['views']} views" if row.get("views", 2) != 2 else ""
    return f"{row['n']}x{row['d']}x{row['segment_dim']} {row['dtype']} {row['precision']}{views}"


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
    for n, d, c, dtype_name, precision, repeat, views in planned_checks(shapes, odd_shapes):
        base = {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision, "views": views}
        if time.perf_counter() > deadline:
            rows.append({**base, "ok": None, "error": "skipped (time budget)"})
            continue
        try:
            row = check_one(n, d, c, dtype_name, precision, device, repeat, views)
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
