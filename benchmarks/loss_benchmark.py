"""Speed and memory of the MUSIC loss against the plain formulation and lightly's peers.

Every (method, N, D) runs in a fresh subprocess, so peak memory is measured without interference:
on CUDA with torch.cuda.max_memory_allocated, on the CPU as the rise of the process' peak resident set
(VmHWM, reset through /proc/self/clear_refs) over its size before the first call. Time is the median of
forward + backward over several repeats after a warm-up, all methods of a table in one run. The methods
are those of `benchmarks.loss_methods`; by default the three matrix products alone (the floor), the plain
formulation, the reference and chunked implementations, and lightly's Barlow Twins and VICReg losses.

    python -m benchmarks.loss_benchmark --device cpu --out results/loss_benchmark
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.loss_methods import METHODS, build_views_step, check_method, matmul_precision
from music_ssl import implementations


def default_methods(device: str) -> tuple[str, ...]:
    """What the benchmark times unless told: the floor, the plain formulation, every registered
    implementation that runs compiled on ``device`` (not in an interpreter), lightly's two losses."""
    compiled = implementations.compiled_on(torch.device(device))
    return ("matmul_floor", "plain", *compiled, "barlow_twins", "vicreg")


DEFAULT_SHAPES = ("256x1024", "256x8192", "2048x8192")


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    method: str,
    n: int,
    d: int,
    segment_dim: int,
    device: str,
    dtype: str,
    repeats: int,
    what: tuple[str, ...] = ("time", "memory"),
    num_views: int = 2,
    num_global: int = 2,
) -> dict:
    """Times one method of `benchmarks.loss_methods.METHODS` and/or measures its peak extra memory in this
    process (a subprocess of its own), on ``num_views`` views, the first ``num_global`` global."""
    check_method(method)
    dev = torch.device(device)
    torch.manual_seed(0)
    views = [
        torch.randn(n, d, device=dev, dtype=getattr(torch, dtype), requires_grad=True)
        for _ in range(num_views)
    ]
    with matmul_precision(METHODS[method].matmul_precision):
        # The floor in float32, the precision every MUSIC implementation computes in.
        step = build_views_step(method, views, num_global, segment_dim, floor_dtype=torch.float32)
        row = _measure_step(step, method, n, d, dev, repeats, what)
    if num_views != 2:
        row.update(views=num_views, global_views=num_global)
    return row


def _measure_step(step, method: str, n: int, d: int, dev: torch.device, repeats: int, what) -> dict:
    row: dict = {"method": method, "n": n, "d": d}
    step()  # warm-up: one-time allocations (kernels, thread pools) are not the method's memory
    _sync(dev)
    if "memory" in what:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            before = _rss_kib("VmRSS") * 1024
        step()
        _sync(dev)
        if dev.type == "cuda":
            row["peak_extra_bytes"] = torch.cuda.max_memory_allocated(dev) - before
        else:
            row["peak_extra_bytes"] = _rss_kib("VmHWM") * 1024 - before
    if "time" in what:
        times = []
        for _ in range(repeats):
            _sync(dev)
            start = time.perf_counter()
            step()
            _sync(dev)
            times.append(time.perf_counter() - start)
        row["seconds"] = statistics.median(times)
    return row


def _run_child(method: str, n: int, d: int, args: argparse.Namespace, num_views: int = 2) -> dict:
    command = [
        sys.executable, "-m", "benchmarks.loss_benchmark", "--child", method, str(n), str(d),
        "--device", args.device, "--dtype", args.dtype, "--repeats", str(args.repeats),
        "--segment-dim", str(args.segment_dim), "--views", str(num_views),
        "--global-views", str(args.global_views),
    ]  # fmt: skip
    if args.device.startswith("cuda"):
        runs = [("time,memory", os.environ)]
    else:
        # On the CPU, memory is measured with a fixed mmap threshold: glibc then returns every large
        # buffer to the OS when it is freed, so the resident set tracks live tensors and the peak is not
        # hidden by memory cached during the warm-up. That costs page faults on every allocation, so
        # time is measured in another process with the allocator's defaults.
        runs = [("memory", {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}), ("time", os.environ)]
    row: dict = {"method": method, "n": n, "d": d}
    if num_views != 2:
        row.update(views=num_views, global_views=args.global_views)
    for what, env in runs:
        done = subprocess.run(
            [*command, "--what", what], capture_output=True, text=True, timeout=args.timeout, env=env
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {**row, "error": tail[0][:200]}
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


def _table(rows: list[dict]) -> str:
    lines = [
        "| N | D | method | time (ms) | vs plain | vs matmul floor | peak extra memory (MiB) | vs plain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        same = [r for r in rows if r["n"] == row["n"] and r["d"] == row["d"] and "seconds" in r]
        plain = next((r for r in same if r["method"] == "plain"), None)
        floor = next((r for r in same if r["method"] == "matmul_floor"), None)
        if "error" in row:
            lines.append(f"| {row['n']} | {row['d']} | {row['method']} | {row['error']} | | | | |")
            continue
        mib = row["peak_extra_bytes"] / 2**20

        def ratio(ref, key, r=row):
            return f"{r[key] / ref[key]:.2f}x" if ref and ref[key] > 0 else ""

        lines.append(
            f"| {row['n']} | {row['d']} | {row['method']} | {1e3 * row['seconds']:.1f} | "
            f"{ratio(plain, 'seconds')} | {ratio(floor, 'seconds')} | {mib:.0f} | "
            f"{ratio(plain, 'peak_extra_bytes')} |"
        )
    return "\n".join(lines)


def _views_table(rows: list[dict]) -> str:
    """Several views: each method's time per pair of views MUSIC compares (`music_ssl.segments.view_pairs`),
    against two-view chunked's time for its one pair, at the same N and D."""
    from music_ssl.segments import view_pairs

    lines = [
        "| N | D | views (global) | pairs | method | time (ms) | per pair (ms) "
        "| per pair vs two-view chunked | peak extra memory (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        views, num_global = row.get("views", 2), row.get("global_views", 2)
        pairs = len(view_pairs(views, min(num_global, views)))
        head = f"| {row['n']} | {row['d']} | {views} ({min(num_global, views)}) | {pairs} | {row['method']} |"
        if "error" in row:
            lines.append(f"{head} {row['error']} | | | |")
            continue
        two_view = next(
            (
                r
                for r in rows
                if (r["n"], r["d"], r.get("views", 2), r["method"]) == (row["n"], row["d"], 2, "chunked")
                and "seconds" in r
            ),
            None,
        )
        per_pair = row["seconds"] / pairs
        versus = f"{per_pair / two_view['seconds']:.2f}x" if two_view else ""
        lines.append(
            f"{head} {1e3 * row['seconds']:.1f} | {1e3 * per_pair:.1f} | {versus} | "
            f"{row['peak_extra_bytes'] / 2**20:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help="comma-separated NxD")
    parser.add_argument(
        "--methods",
        help=f"comma-separated, from benchmarks.loss_methods: {','.join(METHODS)} (default: the floor, "
        "plain, every implementation that runs compiled on --device, barlow_twins, vicreg)",
    )
    parser.add_argument("--segment-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=Path("results/loss_benchmark"))
    parser.add_argument(
        "--views",
        default="2",
        help="comma-separated view counts, e.g. 2,4,8 (multi-crop: the first --global-views are global)",
    )
    parser.add_argument("--global-views", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "N", "D"), help=argparse.SUPPRESS)
    parser.add_argument("--what", default="time,memory", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        method, n, d = args.child
        what = tuple(args.what.split(","))
        row = measure(
            method, int(n), int(d), args.segment_dim, args.device, args.dtype, args.repeats, what,
            num_views=int(args.views), num_global=args.global_views,
        )  # fmt: skip
        print(json.dumps(row))
        return

    methods = args.methods.split(",") if args.methods else default_methods(args.device)
    view_counts = [int(v) for v in args.views.split(",")]
    rows = []
    for shape in args.shapes.split(","):
        n, d = (int(x) for x in shape.lower().split("x"))
        for num_views in view_counts:
            for method in methods:
                row = _run_child(method, n, d, args, num_views)
                rows.append(row)
                print(json.dumps(row), flush=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    meta = {
        "device": args.device,
        "device_name": device_name or platform.machine(),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "segment_dim": args.segment_dim,
        "views": view_counts,
        "global_views": args.global_views,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "command": "python -m benchmarks.loss_benchmark "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = _table(rows) if view_counts == [2] else _views_table(rows)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
