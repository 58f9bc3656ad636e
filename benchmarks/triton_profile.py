"""What the Triton path does on a GPU: CUDA time per kernel, and the configuration autotuning picked."""

from __future__ import annotations

import torch

from benchmarks.loss_methods import build_step, make_views, matmul_precision


def profile_triton(n: int, d: int, segment_dim: int) -> str:
    """CUDA time per kernel of one forward + backward through the Triton path (torch.profiler), float32
    inputs, TF32 products."""
    from torch.profiler import ProfilerActivity, profile

    z_a, z_b = (x.requires_grad_() for x in make_views(n, d, torch.float32))
    with matmul_precision("high"):
        step = build_step("triton+tf32", z_a, z_b, segment_dim)
        step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="device_time_total", row_limit=15)


def autotuned_configs() -> dict:
    """The configuration each autotuned kernel picked, per autotuning key ({} under the interpreter)."""
    from music_ssl.triton_kernel import interpreter_active
    from music_ssl.triton_kernel.kernels import joint_chunk_kernel, scaled_matmul_kernel

    if interpreter_active():
        return {}  # Interpreted kernels are not autotuned.
    chosen = {}
    for kernel in (joint_chunk_kernel, scaled_matmul_kernel):
        name = kernel.base_fn.__name__
        chosen[name] = {str(key): str(config) for key, config in getattr(kernel, "cache", {}).items()}
    return chosen
