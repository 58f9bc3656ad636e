"""Whether the GPU check's pre-compile holds every kernel that its planned launches ask for, on a fake
sm_90 GPU (`fake_gpu`): ``python planned_launches.py [gpu_check arguments]`` prints one JSON object, the
cache keys the pre-compile wrote and those the launches asked for. The environment's WARM_ARGS (a JSON
list) plans the pre-compile from other arguments. Run with TRITON_INTERPRET unset."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch
from fake_gpu import FakeGPU


def main(argv: list[str]) -> None:
    gpu = FakeGPU().install()
    from benchmarks import convergence, gpu_check, gpu_report, loss_methods, triton_accuracy
    from benchmarks.loss_methods import DTYPES, METHODS, build_step, matmul_precision

    def make_views(n, d, dtype, device="cuda", seed=0):
        """Zeros for the benchmark's random views: a launch's arguments depend on shapes, dtypes and
        alignment, not on values, and zeros cost nothing to make."""
        return tuple(torch.zeros(n, d, dtype=dtype, device=device) for _ in range(2))

    loss_methods.make_views = triton_accuracy.make_views = make_views
    from benchmarks.triton_compile import compile_launches, warm_jobs

    with tempfile.TemporaryDirectory() as out:
        args = gpu_check.parse_args(["--out", out, *argv])
        warm_argv = json.loads(os.environ.get("WARM_ARGS", "null"))
        warm_args = args if warm_argv is None else gpu_check.parse_args(["--out", out, *warm_argv])
    # What gpu_check does first (each job of `warm_cache` in a process of its own there).
    launches = gpu_check.planned_launches(warm_args)
    failed = [
        row
        for precision, config, jobs in warm_jobs(launches)
        if "error" in (row := compile_launches(precision, config, jobs, device="cpu"))
    ]
    warmed = sorted(set(gpu.keys))
    gpu.keys.clear()
    gpu.forget_compiled()

    # Then every launch of the run, through the check's and the benchmark's own code, on CPU tensors.
    if not args.skip_check:
        for n, d, c, dtype, precision, _, views in triton_accuracy.planned_checks(
            args.check_shapes, args.odd_shapes
        ):
            inputs = list(make_views(n, d, DTYPES[dtype], "cpu"))
            inputs += list(make_views(n, d, DTYPES[dtype], "cpu", seed=1)) if views > 2 else []
            triton_accuracy._loss_and_gradients(inputs, c, precision, "triton", 2)
    if not args.skip_bench:
        for (n, d), dtype, method in (
            (shape, dtype, m) for shape in args.shapes for dtype in args.dtypes for m in args.methods
        ):
            if method.startswith("triton"):
                z_a, z_b = (x.requires_grad_() for x in make_views(n, d, DTYPES[dtype], "cpu"))
                with matmul_precision(METHODS[method].matmul_precision):
                    build_step(method, z_a, z_b, args.segment_dim)()
        # The profile (`triton_profile.profile_triton`), after the benchmark whatever it timed.
        z_a, z_b = (x.requires_grad_() for x in make_views(*gpu_report.TARGET_SHAPE, torch.float32, "cpu"))
        with matmul_precision("high"):
            build_step("triton+tf32", z_a, z_b, args.segment_dim)()
    for autocast in ("float32", "bfloat16") if args.convergence_steps > 0 else ():
        convergence.loss_curve(
            "triton", "cpu", 1, args.convergence_batch, autocast, width=args.convergence_width
        )
    launched = sorted(set(gpu.keys))
    print(json.dumps({"failed": failed, "warmed": warmed, "launched": launched}))


if __name__ == "__main__":
    main(sys.argv[1:])
