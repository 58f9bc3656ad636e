"""Forward + backward time and peak memory of every method of `benchmarks.loss_methods` on CUDA.

Time is the median of CUDA-event timings after two warm-up passes (compilation, Triton's autotuning,
cuBLAS heuristics); peak memory is `torch.cuda.max_memory_allocated` above what was allocated before the
step. On the CPU (the rehearsal in Triton's interpreter) time is wall-clock and memory is not measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from collections.abc import Callable

import torch

from benchmarks.loss_methods import (
    DTYPES,
    METHODS,
    build_step,
    make_views,
    matmul_precision,
    missing_requirement,
    release_memory,
)


def _precision(method: str) -> str | None:
    # The floor runs float32 products on TF32 tensor cores: the fastest products there are.
    return "high" if method == "matmul_floor" else METHODS[method].matmul_precision


def bench_one(
    method: str, n: int, d: int, dtype_name: str, segment_dim: int, min_seconds: float, device: str = "cuda"
) -> dict:
    """Median seconds of forward + backward (CUDA events; wall clock on CPU) and, on CUDA, the peak
    memory allocated above what was allocated before the step."""
    dtype = DTYPES[dtype_name]
    z_a, z_b = (x.requires_grad_() for x in make_views(n, d, dtype, device))
    if device != "cuda":
        return _bench_wall_clock(method, z_a, z_b, segment_dim, min_seconds)
    with matmul_precision(_precision(method)):
        step = build_step(method, z_a, z_b, segment_dim)
        step()  # Warm-up: compilation, Triton's autotuning, cuBLAS heuristics.
        step()
        z_a.grad = z_b.grad = None
        torch.cuda.synchronize()
        release_memory()
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
    with matmul_precision(_precision(method)):
        step = build_step(method, z_a, z_b, segment_dim)
        step()
        times = []
        while len(times) < 3 or (sum(times) < min_seconds and len(times) < 20):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "repeats": len(times), "peak_extra_bytes": None}


def planned_rows(args: argparse.Namespace) -> list[dict]:
    """The rows `run_benchmark` measures, in its order (their names: `row_key`)."""
    return [
        {"method": method, "n": n, "d": d, "dtype": dtype_name}
        for n, d in args.shapes
        for dtype_name in args.dtypes
        for method in args.methods
    ]


def row_key(row: dict) -> str:
    """A benchmark row's name in the report: N x D dtype method."""
    return f"{row['n']}x{row['d']} {row['dtype']} {row['method']}"


def run_benchmark(
    args: argparse.Namespace, deadline: float, rows: list[dict], save: Callable[[], None]
) -> list[dict]:
    """Appends a row per (shape, dtype, method) of `args` to `rows` and calls save() after each.

    A method whose package is missing, that runs out of memory or fails gets a row with its "error"; one
    that would start after `deadline` (time.perf_counter()) is skipped.
    """
    for base in planned_rows(args):
        method, n, d, dtype_name = base["method"], base["n"], base["d"], base["dtype"]
        missing = missing_requirement(method)
        if missing:
            row = {**base, "error": missing}
        elif time.perf_counter() > deadline:
            row = {**base, "error": "skipped (time budget)"}
        else:
            try:
                row = {
                    **base,
                    **bench_one(method, n, d, dtype_name, args.segment_dim, args.min_seconds, args.device),
                }
            except torch.cuda.OutOfMemoryError:
                row = {**base, "error": "OOM"}
            except Exception as error:
                traceback.print_exc()
                row = {**base, "error": f"{type(error).__name__}: {error}"[:200]}
            release_memory()
        rows.append(row)
        save()
        print("bench", json.dumps(row), flush=True)
    return rows
