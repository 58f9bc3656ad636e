"""The cost of chunked's chunk sums of P log P next to the chunk's matrix product, side by side in one run.

    python -m benchmarks.chunk_sum_cost --n 256 --d 8192 --rows 512 --threads 1

Times, per 512-row chunk of P = p_a^T p_b / N: the product itself, the single running float32 dot product
the sums used to be, and the in-place P log P followed by torch's pairwise sum that replaced it.
"""

import argparse
import time

import torch


def _ms(function, repeats: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return 1e3 * (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--d", type=int, default=8192)
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    p_a, p_b = (torch.rand(args.n, args.d, generator=generator) for _ in range(2))
    chunk, log_chunk, scratch = (torch.empty(args.rows, args.d) for _ in range(3))
    torch.addmm(chunk, p_a.T[: args.rows], p_b, beta=0, alpha=1 / args.n, out=chunk)
    torch.clamp_min(chunk, torch.finfo(chunk.dtype).tiny, out=log_chunk).log_()
    copy = _ms(lambda: scratch.copy_(chunk), args.repeats)
    times = {
        "chunk_product_ms": _ms(
            lambda: torch.addmm(chunk, p_a.T[: args.rows], p_b, beta=0, out=chunk), args.repeats
        ),
        "running_dot_ms": _ms(lambda: torch.dot(chunk.view(-1), log_chunk.view(-1)), args.repeats),
        "in_place_sum_ms": _ms(lambda: scratch.copy_(chunk).mul_(log_chunk).sum(), args.repeats) - copy,
    }
    print(", ".join(f"{name} {value:.2f}" for name, value in times.items()))
    return times


if __name__ == "__main__":
    main()
