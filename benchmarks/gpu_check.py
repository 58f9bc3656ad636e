"""The GPU check: the Triton kernel's accuracy at full size, then forward + backward time and memory of
every method on CUDA, in one run that fits a time budget.

1. Accuracy (`benchmarks.triton_accuracy`): first an odd shape, (1000, 2010, 15): reductions that end in
   a partial tile, rows whose length is no multiple of 16, segments across tiles, in both precisions,
   each run twice and compared bit for bit (a race or an uninitialized read would differ). Then
   `music_loss(..., implementation="triton")` against the
   float64 reference, float32 and bfloat16 inputs, at (N, D, C) = (2048, 8192, 32), (256, 8192, 32) and
   the authors' ImageNet layout (2048, 8160, 80), whose segments do not line up with any tile. Relative
   error (max abs error over max abs value) of the loss, its three terms and both input gradients, with
   TF32 products and, on the first shape, exact float32 products.
2. Benchmark (`benchmarks.gpu_benchmark`): forward + backward, median of CUDA-event timings after warm-up
   (and after Triton's autotuning), and peak memory above the inputs for every method of
   `benchmarks.loss_methods` (the plain eager formulation, the reference, chunked and Triton paths, lightly's
   BarlowTwinsLoss and VICRegLoss, the Triton kernels alone) at (N, D) = (2048, 8192), (256, 8192),
   (4096, 16384), float32 and bfloat16; plus the floor: the three N x D x D products alone on tensor cores
   (TF32 for float32, bf16 for bfloat16). PyTorch's default for float32 matmuls is full float32 (no TF32),
   and the Triton kernel follows the same switch; the "+tf32" rows set
   torch.set_float32_matmul_precision("high").
3. Profile (`benchmarks.triton_profile`): CUDA time per kernel of the Triton path at N=2048, D=8192, and
   the configuration Triton's autotuning picked for each kernel.

A configuration that runs out of memory is reported as OOM; one that would start after --budget-s
seconds is skipped, so the whole run stays inside a time limit (designed for < 7 min on an H100).
gpu_check.json and gpu_check.md (`benchmarks.gpu_report`: the tables and the verdicts) are rewritten
after every row, so a run cut short keeps what it measured and its verdict so far.

    python -m benchmarks.gpu_check --out results/gpu_check      # or: bash benchmarks/gpu_check.sh

On CUDA, every kernel the run will launch is first compiled in parallel processes into Triton's cache,
through the launches themselves (`planned_launches`; the time is in the report's metadata,
`warm_cache`), so autotuning finds them instead of compiling them one after another inside the timed
steps. `--device cpu` runs the same script on CPU tensors in Triton's interpreter
(TRITON_INTERPRET=1, tiny shapes; wall-clock time, no memory figures): a rehearsal, run by
tests/benchmarks/test_gpu_check.py.
`--compile-only` needs no GPU: it compiles every kernel for sm_90 (`benchmarks.triton_compile`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks import convergence, gpu_report
from benchmarks.gpu_benchmark import planned_rows, row_key, run_benchmark
from benchmarks.loss_methods import DTYPES, METHODS, PLAIN_BASELINE
from benchmarks.triton_accuracy import check_key, planned_checks, run_checks

CHECK_SHAPES = ((2048, 8192, 32), (256, 8192, 32), (2048, 8160, 80))
# N = 1000 ends every reduction over samples in a partial tile (no multiple of 16 or 64); D = 2010 gives
# rows whose length is no multiple of 16; C = 15 puts segment boundaries inside tiles.
ODD_SHAPES = ((1000, 2010, 15),)
BENCH_SHAPES = ((2048, 8192), (256, 8192), (4096, 16384))
# Every method of the table, in its order.
DEFAULT_METHODS = tuple(METHODS)


TF32_OVERRIDES = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE")


def _check_name(case: tuple) -> str:
    n, d, c, dtype_name, precision, _, views = case
    return check_key(
        {"n": n, "d": d, "segment_dim": c, "dtype": dtype_name, "precision": precision, "views": views}
    )


def _shape(text: str) -> tuple[int, ...]:
    """'2048x8192' -> (2048, 8192); 'NxDxC' for check shapes."""
    return tuple(int(part) for part in text.lower().split("x"))


def _shapes(length: int):
    def parse(text: str) -> list[tuple[int, ...]]:
        if text == "none":
            return []
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
        help="check shapes, comma-separated NxDxC, or none (default: 2048x8192x32,256x8192x32,2048x8160x80)",
    )
    parser.add_argument(
        "--odd-shapes",
        type=_shapes(3),
        default=list(ODD_SHAPES),
        help="shapes checked first, twice each and bit for bit (default: 1000x2010x15)",
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
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(DEFAULT_METHODS))
    parser.add_argument("--segment-dim", type=int, default=32, help="C for the benchmark (default 32)")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timed seconds per config (3-20 runs)")
    parser.add_argument("--budget-s", type=float, default=400.0, help="start no new config after this")
    parser.add_argument(
        "--check-share",
        type=float,
        default=0.45,
        help="the accuracy checks start no new case after this share of --budget-s, so the timings "
        "always get the rest",
    )
    parser.add_argument(
        "--warm-shapes",
        type=_shapes(3),
        action="extend",
        default=[],
        help="more NxDxC shapes whose launches (with gradients) to compile ahead, for a later run on the "
        "same machine (gpu_check.sh: the memcheck's shape); given twice, both count",
    )
    parser.add_argument(
        "--no-warm-cache",
        action="store_true",
        help="cuda: do not compile the planned launches' kernels in parallel processes before the checks",
    )
    parser.add_argument(
        "--convergence-steps",
        type=int,
        default=300,
        help="training steps of the convergence check (benchmarks/convergence.py); 0 skips it",
    )
    parser.add_argument("--convergence-batch", type=int, default=128, help="its batch size")
    parser.add_argument("--convergence-width", type=int, default=1024, help="its head's width")
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
    if args.convergence_width % convergence.SEGMENT_DIM:
        parser.error(
            f"--convergence-width: {args.convergence_width} is no multiple of the check's segment_dim, "
            f"{convergence.SEGMENT_DIM}"
        )
    for option in ("check_shapes", "odd_shapes", "warm_shapes"):
        for n, d, c in getattr(args, option):
            if d % c:
                flag = "--" + option.replace("_", "-")
                parser.error(f"{flag}: {n}x{d}x{c} has D = {d}, no multiple of C = {c}")
    return args


def _compile_only(out: Path) -> int:
    from benchmarks.triton_compile import compile_offline, lowering_defects

    rows = compile_offline()
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_sm90.json").write_text(json.dumps(rows, indent=2))
    bad = lowering_defects(rows)
    print(f"{len(rows)} kernels compiled for sm_90; {len(bad)} failed, missed wgmma or spilled.")
    return 1 if bad else 0


def planned_launches(args: argparse.Namespace) -> list[tuple[int, int, int, bool]]:
    """The Triton loss's launches this run will make, as (N, D, C, compute_grad): every accuracy check,
    the benchmark's shapes when a Triton method is timed (no gradient for the kernel's P pass alone), the
    profile's shape whenever the benchmark runs, the convergence check's batch, and ``--warm-shapes``.
    What `_warm_cache` compiles ahead."""
    launches = []
    if not args.skip_check:
        launches += [(n, d, c, True) for n, d, c, *_ in planned_checks(args.check_shapes, args.odd_shapes)]
    timed = [m for m in args.methods if m.startswith("triton")]
    if not args.skip_bench:
        shapes = list(args.shapes) if timed else []
        launches += [(n, d, args.segment_dim, True) for n, d in [*shapes, gpu_report.TARGET_SHAPE]]
        if "triton_joint_nograd" in timed:
            launches += [(n, d, args.segment_dim, False) for n, d in shapes]
    if _planned_convergence(args):
        launches.append((args.convergence_batch, args.convergence_width, convergence.SEGMENT_DIM, True))
    launches += [(n, d, c, True) for n, d, c in args.warm_shapes]
    return list(dict.fromkeys(launches))


def _warm_cache(args: argparse.Namespace) -> dict:
    """Every kernel of the planned launches compiled for this GPU in parallel before anything is timed
    (see `benchmarks.triton_compile.warm_cache`); how many, how long, and what failed."""
    from benchmarks.triton_compile import warm_cache, warm_jobs

    launches = planned_launches(args)
    workers = max(1, min(len(warm_jobs(launches)), (os.cpu_count() or 2) - 1))
    try:
        rows, seconds = warm_cache(launches, workers)
    except Exception as error:  # the checks compile what they need themselves
        return {"error": f"{type(error).__name__}: {error}"[:300]}
    failed = [row for row in rows if "error" in row]
    seconds = round(seconds, 1)
    return {
        "launches": len(launches),
        "jobs": len(rows),
        "workers": workers,
        "seconds": seconds,
        "failed": failed[:3],
    }


def _profile(args: argparse.Namespace) -> str:
    from benchmarks.triton_profile import profile_triton

    try:
        return profile_triton(*gpu_report.TARGET_SHAPE, args.segment_dim)
    except Exception as error:
        return f"profiling failed: {type(error).__name__}: {error}"


def _planned_convergence(args: argparse.Namespace) -> list[dict]:
    """The convergence check's rows: the default implementation and Triton against the reference, in
    float32 and under bf16 autocast, as users train."""
    if args.convergence_steps <= 0:
        return []
    return [
        {"implementation": implementation, "autocast": autocast}
        for autocast in ("float32", "bfloat16")
        for implementation in ("auto", "triton")
    ]


def _train_curves(args: argparse.Namespace, deadline: float, rows: list[dict], save) -> None:
    """The convergence check's rows, one precision at a time (its reference curve first); a precision that
    would start after ``deadline`` is skipped."""
    planned = _planned_convergence(args)
    for autocast in dict.fromkeys(row["autocast"] for row in planned):
        names = [row["implementation"] for row in planned if row["autocast"] == autocast]
        if time.perf_counter() > deadline:
            rows += [
                {"implementation": n, "autocast": autocast, "error": "skipped (time budget)"} for n in names
            ]
        else:
            try:
                rows += convergence.run(
                    names,
                    args.device,
                    args.convergence_steps,
                    autocast,
                    args.convergence_batch,
                    args.convergence_width,
                )
            except Exception as error:  # report it and go on
                message = f"{type(error).__name__}: {error}"[:300]
                rows += [{"implementation": n, "autocast": autocast, "error": message} for n in names]
        save()
        print("convergence", json.dumps(rows[-len(names) :]), flush=True)


def _write_whole(path: Path, text: str) -> None:
    """``text`` into ``path`` whole or not at all: a run killed while it writes (or a reader while it
    writes) finds the previous file, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Runs the check and the benchmark as `args` ask; 0 when every accuracy check passed, 1 when one
    failed, 2 when nothing could run (no CUDA device, or the Triton kernel is unavailable)."""
    args = parse_args(argv)
    if args.compile_only:
        return _compile_only(args.out)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA device; torch.cuda.is_available() is False here. Nothing was run.")
        return 2
    from music_ssl import triton_kernel

    reason = triton_kernel.unavailable_reason(torch.device(args.device))
    if reason:
        print(f"The Triton kernel cannot run: {reason}")
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
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "plain_baseline": PLAIN_BASELINE,
        "command": "python -m benchmarks.gpu_check " + " ".join(argv if argv is not None else sys.argv[1:]),
        # Variables that would make the float32 products of torch's own losses TF32 behind their backs.
        "tf32_overrides": {name: os.environ.get(name) for name in TF32_OVERRIDES},
        # What this run set out to measure; the verdict needs every one of them, and `finished`.
        "planned": {
            "checks": []
            if args.skip_check
            else [_check_name(case) for case in planned_checks(args.check_shapes, args.odd_shapes)],
            "bench": [] if args.skip_bench else [row_key(row) for row in planned_rows(args)],
            "convergence": [convergence.row_key(row) for row in _planned_convergence(args)],
        },
        "finished": False,
    }
    print(json.dumps(meta), flush=True)
    checks, bench, trained = [], [], []
    args.out.mkdir(parents=True, exist_ok=True)

    profile_text = ""

    def save() -> None:
        """Both files after every row: a run cut off keeps its tables and its verdict so far."""
        meta["seconds"] = time.perf_counter() - started
        _write_whole(
            args.out / "gpu_check.json",
            json.dumps({"meta": meta, "checks": checks, "bench": bench, "convergence": trained}, indent=2),
        )
        report = gpu_report.render(meta, checks, bench, profile_text, args.segment_dim, trained)
        _write_whole(args.out / "gpu_check.md", report)

    if args.device == "cuda" and not args.no_warm_cache:
        meta["warm_cache"] = _warm_cache(args)
        save()
        print(json.dumps({"warm_cache": meta["warm_cache"]}), flush=True)
    if not args.skip_check:
        check_deadline = min(deadline, time.perf_counter() + args.check_share * args.budget_s)
        run_checks(args.check_shapes, args.device, check_deadline, checks, save, args.odd_shapes)
    if not args.skip_bench:
        run_benchmark(args, deadline, bench, save)
    _train_curves(args, deadline, trained, save)
    if not args.skip_bench and args.device == "cuda" and time.perf_counter() < deadline:
        profile_text = _profile(args)
        print(profile_text, flush=True)
    try:
        from benchmarks.triton_profile import autotuned_configs

        meta["autotuned"] = autotuned_configs()
    except Exception as error:
        meta["autotuned"] = f"{type(error).__name__}: {error}"
    meta["finished"] = True
    save()
    print((args.out / "gpu_check.md").read_text(), flush=True)
    failed = [c for c in checks + trained if c.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
