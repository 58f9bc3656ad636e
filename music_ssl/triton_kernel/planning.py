"""How the host splits the work: rows of P per band, and split reductions for products with few tiles."""

from __future__ import annotations

import functools

import torch


def default_band_rows(batch_size: int, dim: int) -> int:
    """Rows of P per band when gradients are computed.

    About N rows: the dL/dP band then weighs about as much as one input, and a band's products are large
    enough for full tensor-core speed. A multiple of 256 so GPU tiles do not straddle bands."""
    rows = min(max(batch_size, 512), 4096)
    return min(dim, -(-rows // 256) * 256)


@functools.cache
def multiprocessors(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def gpu_split_plan(device: torch.device) -> tuple[int, int, int]:
    """(target output tiles, smallest reduction chunk, tile side) for `k_splits` on a GPU: as many tiles
    as SMs, chunks of at least 512 (a multiple of every BLOCK_K), 128 x 128 tiles."""
    return multiprocessors(device), 512, 128


def k_splits(m: int, n: int, k: int, plan: tuple[int, int, int]) -> tuple[int, int]:
    """(splits, k_chunk) so that a product with few output tiles still fills the GPU.

    dL/dp_a of a band is (local N) x (band rows) with a reduction over all D columns: at N = 256 that
    is 8 tiles of 128 x 128 for 132 SMs. Splitting the reduction into chunks and summing the partial
    products afterwards restores the parallelism. `plan` is `gpu_split_plan(device)`, or the
    interpreter's (`music_ssl.triton_kernel.interpreter.SPLIT_PLAN`)."""
    target, min_chunk, tile = plan
    tiles = -(-m // tile) * -(-n // tile)
    splits = max(1, min(-(-target // tiles), k // min_chunk, 16))
    chunk = -(-k // splits)
    chunk = -(-chunk // min_chunk) * min_chunk
    return -(-k // chunk), chunk
