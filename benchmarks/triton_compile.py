"""Compiles the Triton kernels for a GPU architecture without a GPU, and reads what they lowered to.

For every kernel variant and every configuration of `music_ssl.triton_kernel.kernels.GPU_CONFIGS`: the
instruction `tl.dot` became (wgmma, mma or fma), shared memory, registers and stack bytes (register
spills). Uses Triton's compiler API and the cuobjdump bundled with Triton's NVIDIA backend; the kernels'
argument names and constexprs must match `music_ssl.triton_kernel.kernels`. And warms Triton's cache
on a GPU before the GPU check (`warm_cache`), through the launches themselves (`joint.compile_ahead`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import tempfile

# What torch's "high"/"medium" and "highest" float32 matmul precisions run on such a GPU.
PRECISIONS_ON_TENSOR_CORES = ("tf32", "tf32x3")


def compile_offline(arch: int = 90, precisions=PRECISIONS_ON_TENSOR_CORES, configs=None) -> list[dict]:
    """One row per (operands, precision, config, kernel variant) of ``precisions`` and ``configs`` (default:
    every GPU config): its lowering, or the error compiling it. These sources are specialized by hand, not
    as a launch specializes them, so a launch does not find them in Triton's cache (`warm_cache` does)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from music_ssl.triton_kernel import interpreter_active
    from music_ssl.triton_kernel.kernels import (
        GPU_CONFIGS,
        GPU_GROUP_M,
        SPILL_WITH_TF32X3,
        joint_chunk_kernel,
        scaled_matmul_kernel,
    )

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if interpreter_active():
        raise RuntimeError("--compile-only compiles for the GPU: unset TRITON_INTERPRET.")
    # The autotuned kernels wrap the jitted functions that triton.compile takes.
    chunk_kernel = joint_chunk_kernel.fn
    matmul_kernel = scaled_matmul_kernel.fn
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
    # The kernels take float32 operands (the probabilities and dL/dP), multiplied in each precision that
    # runs on a GPU with TF32 tensor cores (`joint.input_precision`).
    for operand, precision in itertools.product(("fp32",), precisions):
        for m, n, k, warps, stages in GPU_CONFIGS if configs is None else configs:
            if precision == "tf32x3" and (m, n, k, warps, stages) in SPILL_WITH_TF32X3:
                continue  # not tried by autotuning in this precision
            blocks = {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": GPU_GROUP_M}
            blocks["INPUT_PRECISION"] = precision
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
                "chunk+grad": (chunk_kernel, {"WRITE_GRAD": True}, ["stride_an", "stride_bn", "stride_gd"]),
                "chunk": (chunk_kernel, {"WRITE_GRAD": False}, ["stride_an", "stride_bn", "stride_gd"]),
                "grad_a": (matmul_kernel, {"ACCUMULATE": False}, ["stride_ak", "stride_bk", "stride_cn"]),
                "grad_b": (matmul_kernel, {"ACCUMULATE": True}, ["stride_ak", "stride_bn", "stride_cn"]),
            }
            for name, (kernel, flags, unit) in variants.items():
                row = {
                    "operands": operand,
                    "precision": precision,
                    "config": [m, n, k, warps, stages],
                    "kernel": name,
                }
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


def lowering_defects(rows: list[dict]) -> list[dict]:
    """The rows that failed to compile, did not lower tl.dot to wgmma, or spilled registers to the stack."""
    return [r for r in rows if "error" in r or r.get("dot") != "wgmma" or r.get("stack_bytes", 0) > 0]


def compile_launches(
    matmul_precision: str, config: tuple[int, ...], launches: list[tuple], device: str = "cuda"
) -> dict:
    """Compiles, for ``config`` and torch's float32 matmul precision ``matmul_precision`` (restored after),
    every kernel that the Triton loss launches on each (N, D, C, compute_grad) of ``launches``
    (`compile_ahead`: the launches' own arguments, so their cache keys); a row of what it did, with the
    error of each launch that failed (the others are compiled all the same)."""
    import time

    from benchmarks.loss_methods import matmul_precision as precision_set
    from music_ssl.triton_kernel import compile_ahead

    row: dict = {"precision": matmul_precision, "config": list(config), "launches": len(launches)}
    start = time.perf_counter()
    errors = []
    with precision_set(matmul_precision):
        for n, d, c, compute_grad in launches:
            try:
                compile_ahead(n, d, c, compute_grad, device, frozenset({tuple(config)}))
            except Exception as error:
                errors.append(f"{n}x{d}x{c}: {type(error).__name__}: {error}"[:300])
    if errors:
        row["error"] = "; ".join(errors)[:900]
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def warm_jobs(launches: list[tuple]) -> list[tuple[str, tuple[int, ...], list[tuple]]]:
    """`warm_cache`'s jobs: (torch float32 matmul precision, config, launches) for each precision that
    gives tensor-core products ("high": TF32, "highest": tf32x3), each config autotuning tries in it, and
    each launch."""
    from music_ssl.triton_kernel.kernels import GPU_CONFIGS, SPILL_WITH_TF32X3

    return [
        (precision, config, [launch])
        for precision in ("high", "highest")
        for config in GPU_CONFIGS
        if not (precision == "highest" and config in SPILL_WITH_TF32X3)
        for launch in launches
    ]


def warm_cache(launches: list[tuple], workers: int) -> tuple[list[dict], float]:
    """Every kernel the planned ``launches`` (N, D, C, compute_grad) will run, compiled into Triton's
    on-disk cache by a pool of ``workers`` processes (`warm_jobs`, each job `compile_launches`) before
    anything is timed: autotuning then finds them instead of compiling them one after another. Returns a
    row per job and the seconds it took."""
    import concurrent.futures
    import multiprocessing
    import time

    jobs = warm_jobs(launches)
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no CUDA context forked
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(compile_launches, *job) for job in jobs]
        rows = [future.result() for future in futures]
    return rows, time.perf_counter() - start
