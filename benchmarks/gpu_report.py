"""The GPU check's report: its tables in Markdown and the verdict on the Triton kernel's targets.

The targets, at N = 2048, D = 8192: forward + backward at least 3x faster than the plain formulation, at
most 2x the time of the three matrix products alone (the floor), and peak extra memory O(N * D).
"""

from __future__ import annotations

import json

from benchmarks import convergence
from benchmarks.gpu_benchmark import row_key
from benchmarks.loss_methods import DTYPES
from benchmarks.triton_accuracy import ERROR_FLOOR, TERMS, TORCH_FACTOR, check_key

TARGET_SHAPE = (2048, 8192)


def check_table(rows: list[dict]) -> str:
    """Errors against float64: the kernel's per term and its worst gradient, torch's worst in the same
    dtype and precision, and the gate's ratio (`triton_accuracy.TORCH_FACTOR`)."""
    columns = ("N", "D", "C", "views", "dtype", "products", *TERMS, "gradients", "torch's worst")
    columns += ("worst / torch's", "same bits twice", "passed")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in rows:
        shape = f"| {r['n']} | {r['d']} | {r['segment_dim']} | {r.get('views', 2)} | "
        head = shape + f"{r['dtype']} | {r['precision']} | "
        if "error" in r:
            lines.append(head + r["error"] + " |" * (len(columns) - 6))
            continue
        grads = max(value for key, value in r.items() if key.startswith("grad_z_"))
        torch_worst = max(r.get("torch_errors", {}).values(), default=float("nan"))
        repeat = {True: "yes", False: "NO", None: "–"}[r.get("bitwise_repeat")]
        ratio = r.get("worst_ratio_to_torch", float("nan"))
        cells = [f"{r[k]:.1e}" for k in TERMS] + [f"{grads:.1e}", f"{torch_worst:.1e}", f"{ratio:.2f}"]
        lines.append(head + " | ".join(cells) + f" | {repeat} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def bench_table(rows: list[dict]) -> str:
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


def targets(rows: list[dict]) -> list[str]:
    """One line per dtype and Triton variant (exact and TF32 products): its time at the target shape and
    each target met or MISSED. Plain runs at torch's default precision, the floor on TF32 tensor cores."""
    n, d = TARGET_SHAPE
    lines = []
    for dtype_name in DTYPES:
        same = {r["method"]: r for r in rows if (r["n"], r["d"], r["dtype"]) == (n, d, dtype_name)}
        plain, floor = same.get("plain", {}), same.get("matmul_floor", {})
        for variant in ("triton", "triton+tf32"):
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
                per_input = triton["peak_extra_bytes"] / (n * d * 4)
                parts.append(f"peak extra memory {per_input:.1f} x N*D*4 bytes")
            lines.append(", ".join(parts))
    return lines


def missing_rows(meta: dict, checks: list[dict], bench: list[dict], trained: list[dict] = ()) -> list[str]:
    """The planned checks and benchmark rows (``meta["planned"]``) that did not finish with a result: never
    started (the run was cut off or its budget ran out) or stopped by an error other than running out of
    memory (a package that cannot be imported included)."""
    planned = meta.get("planned", {})
    checked = {check_key(row) for row in checks if "error" not in row or row.get("ok") is False}
    measured = {row_key(row) for row in bench if row.get("error") in (None, "OOM")}
    converged = {convergence.row_key(row) for row in trained if "error" not in row}
    return (
        [key for key in planned.get("checks", []) if key not in checked]
        + [key for key in planned.get("bench", []) if key not in measured]
        + [f"training {key}" for key in planned.get("convergence", []) if key not in converged]
    )


def default_verdict(meta: dict, checks: list[dict], bench: list[dict], trained: list[dict] = ()) -> str:
    """Whether this run clears the Triton kernel to become the default of implementation="auto" on CUDA.

    It does only when the run finished (``meta["finished"]``) on a CUDA device, every planned check and
    benchmark row finished (`missing_rows`), every accuracy check and every training curve passed
    (`benchmarks.convergence`) and every Triton row ran. Speed
    targets do not decide it: a slower kernel is a performance issue, not a wrong one. A run cut off
    anywhere names what is missing and recommends nothing."""
    triton_rows = [r for r in bench if r["method"].startswith("triton")]
    failed = [c for c in checks if c.get("ok") is False]
    diverged = [row for row in trained if row.get("ok") is False]
    broken = [r for r in triton_rows if r.get("error") not in (None, "OOM", "skipped (time budget)")]
    missing = missing_rows(meta, checks, bench, trained)
    on_gpu = not meta.get("device_name", "cpu").startswith("cpu")
    finished = meta.get("finished") is True and "planned" in meta
    passed = checks and not failed and not diverged and triton_rows and not broken and not missing
    if on_gpu and finished and passed:
        where = f"{meta['device_name']} with Triton {meta['triton']} (torch {meta['torch']})"
        return (
            f"Every check passed on {where}: to make implementation='auto' run the Triton kernel on CUDA, "
            "set `AUTO_USES_TRITON = True` in music_ssl/implementations.py, noting this GPU and Triton "
            f"{meta['triton']} beside it."
        )
    why = []
    if not finished:
        why.append("the run was cut off before it finished")
    if not on_gpu:
        why.append("not run on a CUDA device")
    if not checks:
        why.append("no accuracy check ran")
    if failed:
        why.append(f"{len(failed)} accuracy check(s) failed")
    if diverged:
        names = ", ".join(convergence.row_key(row) for row in diverged)
        why.append(f"{len(diverged)} training curve(s) left the reference's: {names}")
    if not triton_rows:
        why.append("the Triton kernel was not benchmarked")
    if broken:
        why.append(f"{len(broken)} Triton benchmark row(s) failed")
    if missing:
        listed = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        why.append(f"{len(missing)} planned row(s) without a result: {listed}")
    return f"Not every check passed ({'; '.join(why)}): implementation='auto' stays on 'chunked'."


def convergence_table(rows: list[dict]) -> str:
    lines = [
        "| implementation | precision | steps | first loss | last loss | reference's last | "
        "max step difference | max window difference | tolerance | passed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        head = f"| {r['implementation']} | {r['autocast']} | "
        if "error" in r:
            lines.append(head + r["error"] + " |" * 8)
            continue
        lines.append(
            head
            + f"{r['steps']} | {r['first_loss']:.4f} | {r['last_loss']:.4f} | "
            + f"{r['reference_last_loss']:.4f} | "
            + f"{r['max_step_difference']:.1e} | {r['max_window_difference']:.1e} | {r['tolerance']:g} | "
            + f"{'yes' if r['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def render(
    meta: dict,
    checks: list[dict],
    bench: list[dict],
    profile_text: str,
    segment_dim: int,
    trained: list[dict] = (),
) -> str:
    """gpu_check.md: the run's metadata, the accuracy table, the benchmark, the targets and the profile."""
    report = [f"# GPU check: {meta['device_name']}", "", "```", json.dumps(meta, indent=2), "```", ""]
    report += ["## The default implementation", "", default_verdict(meta, checks, bench, trained), ""]
    if checks:
        report += ["## Triton vs float64 reference (relative error)", "", check_table(checks), ""]
        report += [
            f"A case passes when every error is at most {TORCH_FACTOR:g} times torch's own on the same "
            "inputs (the reference implementation in the same dtype and matmul precision; errors below "
            f"{ERROR_FLOOR:.1e} count as that), and, when run twice, the bits are the same.",
            "",
        ]
    if bench:
        report += [f"## Forward + backward (segment_dim {segment_dim})", "", bench_table(bench), ""]
        report += [f"## Targets at N={TARGET_SHAPE[0]}, D={TARGET_SHAPE[1]}", "", *targets(bench), ""]
    if trained:
        report += [
            "## Training against the reference (benchmarks/convergence.py)",
            "",
            convergence_table(trained),
            "",
        ]
    if profile_text:
        report += [
            f"## Triton path, CUDA time per kernel (N={TARGET_SHAPE[0]}, D={TARGET_SHAPE[1]}, float32, TF32)",
            "",
            "```",
            profile_text,
            "```",
        ]
    return "\n".join(report)
