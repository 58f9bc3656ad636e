"""The one prepared GPU run of issue 3: the Triton kernel at full size, then the loss benchmark on CUDA.

1. Check: `music_loss(..., implementation="triton")` against the float64 reference on the GPU, float32
   and bfloat16 inputs, at (N, D, C) = (256, 8192, 32), (2048, 8192, 32) and the authors' ImageNet
   layout (2048, 8160, 80), whose segments do not line up with any tile. Relative error (max abs error
   over max abs value) of the loss, its three terms and both input gradients; with the default TF32
   products and, once, with exact float32 products (`input_precision="ieee"`).
2. Benchmark: forward + backward, median of CUDA-event timings after warm-up (and after Triton's
   autotuning), and peak memory above the inputs (torch.cuda.max_memory_allocated) for the plain eager
   formulation, the reference, the chunked path, the Triton kernel and lightly's BarlowTwinsLoss and
   VICRegLoss, at (N, D) = (2048, 8192), (256, 8192), (4096, 16384), float32 and bfloat16; plus the
   floor: the three N x D x D products alone on tensor cores (TF32 for float32, bf16 for bfloat16).
   PyTorch's default for float32 matmuls is full float32 (no TF32); the "+tf32" rows set
   torch.set_float32_matmul_precision("high") for the methods that use torch matmuls. "triton+16bit"
   (bfloat16 only) runs the kernel's products on bf16 tensor cores (triton_joint's operand_dtype).

A configuration that runs out of memory is reported as OOM; one that would start after --budget-s
seconds is skipped, so the whole run stays inside the device limits (designed for < 7 min on an H100).
gpu_check.json is rewritten after every row, so a run cut short keeps what it measured.

    python -m benchmarks.gpu_check --out results/gpu_check      # or: bash benchmarks/gpu_check.sh

`--device cpu` runs the same script on CPU tensors in Triton's interpreter (TRITON_INTERPRET=1, tiny
shapes; wall-clock time, no memory figures): the CI rehearsal of the device run
(tests/benchmarks/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

CHECK_SHAPES = ((2048, 8192, 32), (256, 8192, 32), (2048, 8160, 80))
BENCH_SHAPES = ((2048, 8192), (256, 8192), (4096, 16384))
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
METHODS = (
    "matmul_floor",
    "plain",
    "plain+tf32",
    "reference",
    "chunked",
    "chunked+tf32",
    "triton",
    "triton+16bit",
    "triton_joint_only",
    "triton_joint_nograd",
    "barlow_twins",
    "vicreg",
)
# Stated tolerances (relative error vs the float64 reference). TF32 operands carry 10 mantissa bits.
# Emulating TF32 rounding on CPU gave about 1e-6 on the terms and 5e-4 on the gradients.
TOLERANCE = {
    ("tf32", "terms"): 1e-4,
    ("tf32", "grads"): 2e-3,
    ("ieee", "terms"): 1e-4,
    ("ieee", "grads"): 1e-4,
    # operand_dtype=bfloat16: p and dL/dP rounded to 8 mantissa bits for the products.
    ("16bit", "terms"): 5e-4,
    ("16bit", "grads"): 2e-2,
}
# bfloat16 gradients are rounded to bfloat16 on the way out (8 mantissa bits).
BF16_GRAD_TOLERANCE = 1e-2


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double(), want.detach().double()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _inputs(
    n: int, d: int, dtype: torch.dtype, device: str = "cuda", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator(device=device).manual_seed(seed)
    z_a = torch.randn(n, d, device=device, generator=generator).to(dtype)
    z_b = (z_a.float() + torch.randn(n, d, device=device, generator=generator)).to(dtype)
    return z_a, z_b


def check_one(n: int, d: int, c: int, dtype_name: str, precision: str, device: str = "cuda") -> dict:
    from music_ssl import music_loss
    from music_ssl.fused import music_loss_fused
    from music_ssl.triton_joint import triton_joint_entropies

    z_a, z_b = _inputs(n, d, DTYPES[dtype_name], device)
    z = [x.clone().requires_grad_() for x in (z_a, z_b)]
    if precision == "tf32":
        out = music_loss(*z, segment_dim=c, implementation="triton", return_terms=True)
    else:
        options = {"operand_dtype": z_a.dtype} if precision == "16bit" else {"input_precision": precision}
        joint = functools.partial(triton_joint_entropies, **options)
        out = music_loss_fused(*z, c, 1.0, 1.0, 1.0, 1.0, False, joint_entropies=joint)
    grads = torch.autograd.grad(out.loss, z)
    terms = {name: getattr(out, name).detach() for name in ("loss", "invariance", "diag", "off")}
    del out
    z64 = [x.double().requires_grad_() for x in (z_a, z_b)]
    expected = music_loss(*z64, segment_dim=c, implementation="reference", return_terms=True)
    expected_grads = torch.autograd.grad(expected.loss, z64)
    errors = {name: _rel_err(value, getattr(expected, name)) for name, value in terms.items()}
    errors["grad_z_a"] = _rel_err(grads[0], expected_grads[0])
    errors["grad_z_b"] = _rel_err(grads[1], expected_grads[1])
    grad_tolerance = TOLERANCE[(precision, "grads")]
    if dtype_name == "bfloat16":
        grad_tolerance = max(grad_tolerance, BF16_GRAD_TOLERANCE)
    ok = all(errors[k] <= TOLERANCE[(precision, "terms")] for k in terms) and all(
        errors[k] <= grad_tolerance for k in ("grad_z_a", "grad_z_b")
    )
    return {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision, "ok": ok, **errors}


def run_checks(
    shapes: list[tuple[int, int, int]], device: str, deadline: float, rows: list[dict], save
) -> list[dict]:
    """Appends a row per case to `rows` and calls save() after each: every shape with the default
    products in both dtypes, then exact float32 products and 16-bit operands on the first and last."""
    cases = [(n, d, c, dt, "tf32") for n, d, c in shapes for dt in DTYPES]
    cases.append((*shapes[0], "float32", "ieee"))
    cases += [(*shape, "bfloat16", "16bit") for shape in dict.fromkeys((shapes[0], shapes[-1]))]
    for n, d, c, dtype_name, precision in cases:
        base = {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision}
        if time.perf_counter() > deadline:
            rows.append({**base, "ok": None, "error": "skipped (time budget)"})
            continue
        try:
            row = check_one(n, d, c, dtype_name, precision, device)
        except torch.cuda.OutOfMemoryError:
            row = {**base, "ok": None, "error": "OOM"}
        except Exception as error:  # Report and go on: one broken case must not lose the benchmark.
            traceback.print_exc()
            row = {**base, "ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        _free()
        rows.append(row)
        save()
        print("check", json.dumps(row), flush=True)
    return rows


class _TF32:
    """float32 matmuls on TF32 tensor cores inside the block (torch's "high" matmul precision)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        self.saved = torch.get_float32_matmul_precision()
        if self.enabled:
            torch.set_float32_matmul_precision("high")

    def __exit__(self, *exc: object) -> None:
        torch.set_float32_matmul_precision(self.saved)


def _plain_loss():
    """benchmarks.plain_music if present (the lead's eager baseline), else the reference implementation."""
    try:
        from benchmarks.plain_music import plain_music_loss
    except ImportError:
        from music_ssl import music_loss

        return lambda a, b, c: music_loss(a, b, segment_dim=c, implementation="reference"), "reference"
    return lambda a, b, c: plain_music_loss(a, b, c), "benchmarks.plain_music"


def _build_step(method: str, z_a: torch.Tensor, z_b: torch.Tensor, segment_dim: int):
    """fn() running one forward + backward of `method` (or the floor's three products)."""
    name = method.removesuffix("+tf32")
    if name == "matmul_floor":
        d = z_a.shape[1]
        a, b = z_a.detach(), z_b.detach()
        grad_joint = torch.randn(d, d, device=a.device, dtype=a.dtype)

        def floor():
            return a.T @ b, b @ grad_joint.T, a @ grad_joint

        return floor
    if name in ("triton_joint_only", "triton_joint_nograd"):
        # The kernels alone, on ready probabilities: with the gradients, and the P pass without them.
        from music_ssl.triton_joint import triton_joint_entropies

        shape = (z_a.shape[0], -1, segment_dim)
        p_a = torch.softmax(z_a.detach().float().view(shape), -1).view_as(z_a).contiguous()
        p_b = torch.softmax(z_b.detach().float().view(shape), -1).view_as(z_b).contiguous()
        rows, grad = (0, z_a.shape[0]), name == "triton_joint_only"
        return lambda: triton_joint_entropies(p_a, p_b, rows, segment_dim, 1.0, 1.0, 1.0, grad)

    if name == "plain":
        plain, _ = _plain_loss()
        loss_fn = functools.partial(plain, c=segment_dim)
    elif name in ("reference", "chunked", "triton"):
        from music_ssl import MUSICLoss

        loss_fn = MUSICLoss(segment_dim=segment_dim, implementation=name)
    elif name == "triton+16bit":
        # The products on 16-bit tensor cores, in the inputs' dtype (triton_joint's operand_dtype).
        from music_ssl.fused import music_loss_fused
        from music_ssl.triton_joint import triton_joint_entropies

        joint = functools.partial(triton_joint_entropies, operand_dtype=z_a.dtype)

        def loss_fn(a, b):
            return music_loss_fused(a, b, segment_dim, 1.0, 1.0, 1.0, 1.0, False, joint_entropies=joint).loss
    elif name == "barlow_twins":
        from lightly.loss import BarlowTwinsLoss

        loss_fn = BarlowTwinsLoss()
    elif name == "vicreg":
        from lightly.loss import VICRegLoss

        loss_fn = VICRegLoss()
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")

    def step():
        z_a.grad = z_b.grad = None
        loss_fn(z_a, z_b).backward()

    return step


def bench_one(
    method: str, n: int, d: int, dtype_name: str, segment_dim: int, min_seconds: float, device: str = "cuda"
) -> dict:
    """Median seconds of forward + backward (CUDA events; wall clock on CPU) and, on CUDA, the peak
    memory allocated above what was allocated before the step."""
    dtype = DTYPES[dtype_name]
    z_a, z_b = (x.requires_grad_() for x in _inputs(n, d, dtype, device))
    if device != "cuda":
        return _bench_wall_clock(method, z_a, z_b, segment_dim, min_seconds)
    # The floor runs float32 products on TF32 tensor cores, as the Triton kernel does.
    with _TF32(method.endswith("+tf32") or method == "matmul_floor"):
        step = _build_step(method, z_a, z_b, segment_dim)
        step()  # Warm-up: compilation, Triton's autotuning, cuBLAS heuristics.
        step()
        z_a.grad = z_b.grad = None
        torch.cuda.synchronize()
        _free()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        stop.record()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        first = start.elapsed_time(stop) / 1e3
        repeats = max(3, min(20, int(min_seconds / max(first, 1e-6))))
        times = [first]
        for _ in range(repeats - 1):
            start.record()
            step()
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
    return {"seconds": statistics.median(times), "repeats": len(times), "peak_extra_bytes": peak}


def _bench_wall_clock(method: str, z_a, z_b, segment_dim: int, min_seconds: float) -> dict:
    with _TF32(method.endswith("+tf32") or method == "matmul_floor"):
        step = _build_step(method, z_a, z_b, segment_dim)
        step()
        times = []
        while len(times) < 3 or (sum(times) < min_seconds and len(times) < 20):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "repeats": len(times), "peak_extra_bytes": None}


def run_benchmark(args: argparse.Namespace, deadline: float, rows: list[dict], save) -> list[dict]:
    """Appends a row per (shape, dtype, method) to `rows` and calls save() after each."""
    try:
        import lightly.loss  # noqa: F401
    except ImportError as error:
        lightly_error = f"lightly not importable ({error})"
    else:
        lightly_error = ""
    for n, d in args.shapes:
        for dtype_name in args.dtypes:
            for method in args.methods:
                if method == "triton+16bit" and dtype_name == "float32":
                    continue  # The same run as "triton".
                base = {"method": method, "n": n, "d": d, "dtype": dtype_name}
                if method in ("barlow_twins", "vicreg") and lightly_error:
                    row = {**base, "error": lightly_error}
                elif time.perf_counter() > deadline:
                    row = {**base, "error": "skipped (time budget)"}
                else:
                    try:
                        row = {
                            **base,
                            **bench_one(
                                method, n, d, dtype_name, args.segment_dim, args.min_seconds, args.device
                            ),
                        }
                    except torch.cuda.OutOfMemoryError:
                        row = {**base, "error": "OOM"}
                    except Exception as error:
                        traceback.print_exc()
                        row = {**base, "error": f"{type(error).__name__}: {error}"[:200]}
                    _free()
                rows.append(row)
                save()
                print("bench", json.dumps(row), flush=True)
    return rows


def profile_triton(n: int, d: int, segment_dim: int) -> str:
    """CUDA time per kernel of one forward + backward through the Triton path (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    z_a, z_b = (x.requires_grad_() for x in _inputs(n, d, torch.float32))
    step = _build_step("triton", z_a, z_b, segment_dim)
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="device_time_total", row_limit=15)


def _autotuned_configs() -> dict:
    """The config each autotuned kernel picked, per autotuning key."""
    from music_ssl import triton_joint

    if triton_joint.interpreter_active():
        return {}  # Interpreted kernels are not autotuned.
    chosen = {}
    for kernel in (triton_joint._joint_band_kernel, triton_joint._scaled_matmul_kernel):
        name = kernel.base_fn.__name__
        chosen[name] = {str(key): str(config) for key, config in getattr(kernel, "cache", {}).items()}
    return chosen


def compile_offline(arch: int = 90) -> list[dict]:
    """Compiles every kernel variant and config for `arch` without a GPU (triton's bundled ptxas) and
    reads the instruction it lowered tl.dot to, shared memory, registers and stack (spills)."""
    import os
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from music_ssl import triton_joint

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if triton_joint.interpreter_active():
        raise RuntimeError("--compile-only compiles for the GPU: unset TRITON_INTERPRET.")
    # The autotuned kernels wrap the jitted functions that triton.compile takes.
    band_kernel = triton_joint._joint_band_kernel.fn
    matmul_kernel = triton_joint._scaled_matmul_kernel.fn
    aligned = [["tt.divisibility", 16]]

    def source(kernel, types: dict, constants: dict, unit_strides: list[str]) -> ASTSource:
        # As a launch specializes them: unit strides are constants, other ints and pointers 16-aligned.
        constants = {**constants, **dict.fromkeys(unit_strides, 1)}
        signature = {
            name: ("constexpr" if name in constants else types.get(name, "i32")) for name in kernel.arg_names
        }
        attrs = {
            (kernel.arg_names.index(name),): aligned
            for name, kind in signature.items()
            if kind != "constexpr" and not kind.startswith("fp32") and name not in ("row_start", "row_stop")
        }
        return ASTSource(kernel, signature, constants, attrs)

    rows = []
    for operand in ("fp32", "bf16"):
        for m, n, k, warps, stages in triton_joint.GPU_CONFIGS:
            blocks = {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8, "UPCAST": False}
            blocks["INPUT_PRECISION"] = "tf32"
            scalars = {
                "inv_n": "fp32",
                "tiny": "fp32",
                "diag_coef": "fp32",
                "off_coef": "fp32",
                "alpha": "fp32",
            }
            pointers = {"a_ptr": f"*{operand}", "b_ptr": f"*{operand}", "grad_ptr": f"*{operand}"}
            pointers.update(partial_ptr="*fp32", c_ptr="*fp32")
            types = {**scalars, **pointers}
            variants = {
                "band+grad": (band_kernel, {"WRITE_GRAD": True}, ["stride_an", "stride_bn", "stride_gd"]),
                "band": (band_kernel, {"WRITE_GRAD": False}, ["stride_an", "stride_bn", "stride_gd"]),
                "grad_a": (matmul_kernel, {"ACCUMULATE": False}, ["stride_ak", "stride_bk", "stride_cn"]),
                "grad_b": (matmul_kernel, {"ACCUMULATE": True}, ["stride_ak", "stride_bn", "stride_cn"]),
            }
            for name, (kernel, flags, unit) in variants.items():
                row = {"operands": operand, "config": [m, n, k, warps, stages], "kernel": name}
                try:
                    compiled = triton.compile(
                        source(kernel, types, {**blocks, **flags}, unit),
                        target=GPUTarget("cuda", arch, 32),
                        options={"num_warps": warps, "num_stages": stages},
                    )
                except Exception as error:
                    rows.append({**row, "error": f"{type(error).__name__}: {error}"[:300]})
                    print("compile", json.dumps(rows[-1]), flush=True)
                    continue
                ttgir = compiled.asm["ttgir"]
                row["dot"] = (
                    "wgmma" if "warp_group_dot" in ttgir else ("mma" if "nvidia_mma" in ttgir else "fma")
                )
                row["shared_bytes"] = compiled.metadata.shared
                with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
                    cubin.write(compiled.asm["cubin"])
                    cubin.flush()
                    usage = subprocess.run(
                        [cuobjdump, "-res-usage", cubin.name], capture_output=True, text=True
                    )
                found = re.search(r"REG:(\d+).*?STACK:(\d+)", usage.stdout)
                if found:
                    row["registers"], row["stack_bytes"] = int(found.group(1)), int(found.group(2))
                rows.append(row)
                print("compile", json.dumps(row), flush=True)
    return rows


def _check_table(rows: list[dict]) -> str:
    keys = ("loss", "invariance", "diag", "off", "grad_z_a", "grad_z_b")
    lines = [
        "| N | D | C | dtype | products | " + " | ".join(keys) + " | within tolerance |",
        "|---" * (len(keys) + 6) + "|",
    ]
    for r in rows:
        head = f"| {r['n']} | {r['d']} | {r['segment_dim']} | {r['dtype']} | {r['precision']} | "
        if "error" in r:
            lines.append(head + r["error"] + " |" * len(keys) + " |")
        else:
            lines.append(
                head + " | ".join(f"{r[k]:.1e}" for k in keys) + f" | {'yes' if r['ok'] else 'NO'} |"
            )
    return "\n".join(lines)


def _bench_table(rows: list[dict]) -> str:
    lines = [
        "| N | D | dtype | method | time (ms) | vs triton | vs matmul floor | peak extra (MiB) | "
        "peak / (N*D*4 B) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['n']} | {r['d']} | {r['dtype']} | {r['method']} | "
        if "error" in r:
            lines.append(head + r["error"] + " | | | | |")
            continue
        same = {x["method"]: x for x in rows if (x["n"], x["d"], x["dtype"]) == (r["n"], r["d"], r["dtype"])}
        triton = same.get("triton", {}).get("seconds")
        floor = same.get("matmul_floor", {}).get("seconds")
        ms = 1e3 * r["seconds"]
        vs_triton = f"{r['seconds'] / triton:.2f}x" if triton else ""
        vs_floor = f"{r['seconds'] / floor:.2f}x" if floor else ""
        if r["peak_extra_bytes"] is None:
            memory = "n/a | n/a"
        else:
            memory = (
                f"{r['peak_extra_bytes'] / 2**20:.0f} | {r['peak_extra_bytes'] / (r['n'] * r['d'] * 4):.1f}"
            )
        lines.append(head + f"{ms:.2f} | {vs_triton} | {vs_floor} | {memory} |")
    return "\n".join(lines)


def _targets(rows: list[dict]) -> list[str]:
    """Issue 3's targets at N=2048, D=8192: >= 3x plain, <= 2x the floor, peak memory O(N*D)."""
    lines = []
    for dtype_name in DTYPES:
        same = {r["method"]: r for r in rows if (r["n"], r["d"], r["dtype"]) == (2048, 8192, dtype_name)}
        plain, floor = same.get("plain", {}), same.get("matmul_floor", {})
        variants = ("triton",) if dtype_name == "float32" else ("triton", "triton+16bit")
        for variant in variants:
            triton = same.get(variant, {})
            if "seconds" not in triton:
                lines.append(f"- {dtype_name}, {variant}: not measured ({triton.get('error', 'not run')})")
                continue
            parts = [f"- {dtype_name}, {variant}: {1e3 * triton['seconds']:.2f} ms"]
            if "seconds" in plain:
                speedup = plain["seconds"] / triton["seconds"]
                verdict = "met" if speedup >= 3 else "MISSED"
                parts.append(f"{speedup:.1f}x faster than plain (target >= 3x: {verdict})")
            if "seconds" in floor:
                ratio = triton["seconds"] / floor["seconds"]
                verdict = "met" if ratio <= 2 else "MISSED"
                parts.append(f"{ratio:.2f}x the {dtype_name} matmul floor (target <= 2x: {verdict})")
            if triton["peak_extra_bytes"] is not None:
                per_input = triton["peak_extra_bytes"] / (2048 * 8192 * 4)
                parts.append(f"peak extra memory {per_input:.1f} x N*D*4 bytes")
            lines.append(", ".join(parts))
    return lines


def _shape(text: str) -> tuple[int, ...]:
    """'2048x8192' -> (2048, 8192); 'NxDxC' for check shapes."""
    return tuple(int(part) for part in text.lower().split("x"))


def _shapes(length: int):
    def parse(text: str) -> list[tuple[int, ...]]:
        shapes = [_shape(part) for part in text.split(",")]
        if any(len(shape) != length for shape in shapes):
            raise argparse.ArgumentTypeError(f"expected {'x'.join('NDC'[:length])} shapes, got {text!r}")
        return shapes

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument(
        "--shapes",
        type=_shapes(2),
        default=list(BENCH_SHAPES),
        help="benchmark shapes, comma-separated NxD (default: 2048x8192,256x8192,4096x16384)",
    )
    parser.add_argument(
        "--check-shapes",
        type=_shapes(3),
        default=list(CHECK_SHAPES),
        help="check shapes, comma-separated NxDxC (default: 2048x8192x32,256x8192x32,2048x8160x80)",
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: a rehearsal in Triton's interpreter (TRITON_INTERPRET=1; use tiny shapes)",
    )
    parser.add_argument(
        "--dtypes", type=lambda s: s.split(","), default=list(DTYPES), help="float32,bfloat16"
    )
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--segment-dim", type=int, default=32, help="C for the benchmark (default 32)")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timed seconds per config (3-20 runs)")
    parser.add_argument("--budget-s", type=float, default=400.0, help="start no new config after this")
    parser.add_argument("--skip-check", action="store_true", help="benchmark only")
    parser.add_argument("--skip-bench", action="store_true", help="check only")
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="no GPU needed: compile every kernel for sm_90 and report dot lowering, registers, spills",
    )
    args = parser.parse_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {','.join(METHODS)}")
    bad_dtypes = [x for x in args.dtypes if x not in DTYPES]
    if bad_dtypes:
        parser.error(f"unknown dtypes {bad_dtypes}; choose from {','.join(DTYPES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compile_only:
        rows = compile_offline()
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compile_sm90.json").write_text(json.dumps(rows, indent=2))
        bad = [r for r in rows if "error" in r or r.get("dot") != "wgmma" or r.get("stack_bytes", 0) > 0]
        print(f"{len(rows)} kernels compiled for sm_90; {len(bad)} failed, missed wgmma or spilled.")
        return 1 if bad else 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA device; torch.cuda.is_available() is False here. Nothing was run.")
        return 2
    from music_ssl import triton_joint

    if not triton_joint.is_available(torch.device(args.device)):
        print(f"The Triton kernel cannot run: {triton_joint.unavailable_reason(torch.device(args.device))}")
        return 2
    started = time.perf_counter()
    deadline = started + args.budget_s
    import triton

    meta = {
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu (Triton interpreter)",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "segment_dim": args.segment_dim,
        "triton_input_precision": triton_joint.CUDA_INPUT_PRECISION,
        "plain_baseline": _plain_loss()[1],
        "command": "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps(meta), flush=True)
    checks, bench = [], []
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (args.out / "gpu_check.json").write_text(
            json.dumps({"meta": meta, "checks": checks, "bench": bench}, indent=2)
        )

    if not args.skip_check:
        run_checks(args.check_shapes, args.device, deadline, checks, save)
    if not args.skip_bench:
        run_benchmark(args, deadline, bench, save)
    profile_text = ""
    if not args.skip_bench and args.device == "cuda" and time.perf_counter() < deadline:
        try:
            profile_text = profile_triton(2048, 8192, args.segment_dim)
        except Exception as error:
            profile_text = f"profiling failed: {type(error).__name__}: {error}"
        print(profile_text, flush=True)
    try:
        meta["autotuned"] = _autotuned_configs()
    except Exception as error:
        meta["autotuned"] = f"{type(error).__name__}: {error}"
    meta["seconds"] = time.perf_counter() - started

    report = [f"# GPU check: {meta['device_name']}", "", "```", json.dumps(meta, indent=2), "```", ""]
    if checks:
        report += ["## Triton vs float64 reference (relative error)", "", _check_table(checks), ""]
        tolerances = ", ".join(f"{p} {kind} <= {t:g}" for (p, kind), t in TOLERANCE.items())
        report += [f"Tolerances: {tolerances}; bfloat16 gradients <= {BF16_GRAD_TOLERANCE:g}.", ""]
    if bench:
        report += [f"## Forward + backward (segment_dim {args.segment_dim})", "", _bench_table(bench), ""]
        report += ["## Targets at N=2048, D=8192", "", *_targets(bench), ""]
    if profile_text:
        report += [
            "## Triton path, CUDA time per kernel (N=2048, D=8192, float32)",
            "",
            "```",
            profile_text,
            "```",
        ]
    save()
    (args.out / "gpu_check.md").write_text("\n".join(report))
    print("\n".join(report), flush=True)
    failed = [c for c in checks if c.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
