"""Tile shapes of the kernels on GPUs, autotuned (the interpreter's fixed tiles: `interpreter`)."""

from __future__ import annotations

from music_ssl.triton_kernel.availability import interpreted, too_old, triton

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages). Compiled offline for sm_90 (python -m
# benchmarks.gpu_check --compile-only): with TF32 products every kernel lowers to wgmma without register
# spills; float32 operands use up to 192 KiB of shared memory (128 x 128 x 64, 3 stages). 4-warp
# 128 x 128 and 128 x 256 tiles spilled in the epilogue and were left out. With tf32x3 products (torch's
# "highest") two of them spill and are not tried (`SPILL_WITH_TF32X3`).
GPU_CONFIGS = (
    (128, 128, 32, 8, 3),
    (128, 128, 64, 8, 3),
    (64, 256, 32, 8, 3),
    (128, 64, 32, 4, 4),
)
# Tiles of programs launched together along M share strips of both operands in L2.
GPU_GROUP_M = 8
# tf32x3 products hold two parts of every operand: these tiles spilled registers in its compile for sm_90.
SPILL_WITH_TF32X3 = ((128, 128, 64, 8, 3), (64, 256, 32, 8, 3))


def _config_tuple(config) -> tuple[int, ...]:
    kwargs = config.kwargs
    return (kwargs["BLOCK_M"], kwargs["BLOCK_N"], kwargs["BLOCK_K"], config.num_warps, config.num_stages)


def prune_for_precision(configs, named_args, **kwargs):
    """The configs autotuning tries for a launch: without those that spill in its precision."""
    if kwargs.get("INPUT_PRECISION") != "tf32x3":
        return configs
    return [config for config in configs if _config_tuple(config) not in SPILL_WITH_TF32X3]


def autotuned(**options):
    """triton.autotune over GPU_CONFIGS for compiled kernels; interpreted kernels get the fixed
    interpreter blocks at launch (`music_ssl.triton_kernel.joint`)."""

    def wrap(kernel):
        if triton is None or interpreted(kernel) or too_old():
            return kernel  # Interpreted, or a triton too old to run it (see unavailable_reason).
        configs = [
            triton.Config(
                {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": GPU_GROUP_M},
                num_warps=warps,
                num_stages=stages,
            )
            for m, n, k, warps, stages in GPU_CONFIGS
        ]
        return triton.autotune(
            configs, prune_configs_by={"early_config_prune": prune_for_precision}, **options
        )(kernel)

    return wrap
