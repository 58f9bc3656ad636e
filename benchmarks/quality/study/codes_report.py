"""The codes study's summary and table (``python -m benchmarks.quality.study codes``): MUSIC's segments
as clusterings of the test split, and its codes as retrieval keys."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.quality.names import result_label
from benchmarks.quality.study.plots import codes_plots
from benchmarks.quality.study.store import load_runs, write_summary

RETRIEVAL_METRICS = ("precision@1", "precision@10", "precision@100", "mAP@100", "ms_per_query")


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 4)


def _quartiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q1, median, q3 = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
    return {
        "min": round(ordered[0], 4),
        "q1": round(q1, 4),
        "median": round(median, 4),
        "q3": round(q3, 4),
        "max": round(ordered[-1], 4),
    }


def summarize_codes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    segment_dim = runs[0]["segment_dim"]
    raw = f"raw_pixels_k{segment_dim}"
    per_seed = []
    for run in runs:
        nmis = [s["nmi"] for s in run["segments"]]
        per_seed.append(
            {
                "seed": run["seed"],
                "best_nmi": round(max(nmis), 4),
                "median_nmi": round(statistics.median(nmis), 4),
                "best_accuracy": round(max(s["accuracy"] for s in run["segments"]), 4),
                "median_accuracy": round(statistics.median(s["accuracy"] for s in run["segments"]), 4),
                "beat_raw_pixels_kmeans": sum(n > run["kmeans"][raw]["nmi"] for n in nmis),
                "random_init_median_nmi": round(
                    statistics.median(s["nmi"] for s in run["random_init_segments"]), 4
                ),
            }
        )
    kmeans = {
        name: {m: _mean([run["kmeans"][name][m] for run in runs]) for m in ("nmi", "accuracy")}
        for name in runs[0]["kmeans"]
    }
    retrieval = {
        name: {
            "bytes": runs[0]["retrieval"]["results"][name]["bytes"],
            **{m: _mean([run["retrieval"]["results"][name][m] for run in runs]) for m in RETRIEVAL_METRICS},
            "precision_at": {
                k: _mean([run["retrieval"]["results"][name][k] for run in runs])
                for k in runs[0]["retrieval"]["results"][name]
                if k.startswith("precision@")
            },
        }
        for name in runs[0]["retrieval"]["results"]
    }
    pooled_nmi = [s["nmi"] for run in runs for s in run["segments"]]
    pooled_accuracy = [s["accuracy"] for run in runs for s in run["segments"]]
    return {
        "seeds": [run["seed"] for run in runs],
        "segment_dim": segment_dim,
        "num_segments": runs[0]["num_segments"],
        "segments_nmi": _quartiles(pooled_nmi),
        "segments_accuracy": _quartiles(pooled_accuracy),
        "random_init_segments_nmi": _quartiles(
            [s["nmi"] for run in runs for s in run["random_init_segments"]]
        ),
        "per_seed": per_seed,
        "kmeans": kmeans,
        "retrieval": retrieval,
        "retrieval_setup": {k: runs[0]["retrieval"][k] for k in ("queries", "database", "bits")},
        "seconds": [run["seconds"] for run in runs],
    }


def codes_markdown(summary: dict[str, Any]) -> str:
    c, s = summary["segment_dim"], summary["num_segments"]
    lines = [
        f"# MUSIC's codes: {s} segments of {c} attributes, seeds {summary['seeds']}",
        "",
        "## Segments as clusterings of the test split",
        "",
        "| | NMI | cluster accuracy |",
        "|---|---|---|",
    ]
    nmi, acc = summary["segments_nmi"], summary["segments_accuracy"]
    for key in ("max", "q3", "median", "q1", "min"):
        lines.append(f"| MUSIC segments, {key} | {nmi[key]:.3f} | {acc[key]:.3f} |")
    random_median = summary["random_init_segments_nmi"]["median"]
    lines.append(f"| random-init MUSIC head's segments, median | {random_median:.3f} | |")
    for name, scores in summary["kmeans"].items():
        lines.append(f"| k-means, {result_label(name)} | {scores['nmi']:.3f} | {scores['accuracy']:.3f} |")
    lines += [
        "",
        "| seed | best NMI | median NMI | segments beating k-means on raw pixels (k = C) |",
        "|---|---|---|---|",
    ]
    for row in summary["per_seed"]:
        beat = f"{row['beat_raw_pixels_kmeans']} of {s}"
        lines.append(f"| {row['seed']} | {row['best_nmi']:.3f} | {row['median_nmi']:.3f} | {beat} |")
    setup = summary["retrieval_setup"]
    lines += [
        "",
        f"## Retrieval: {setup['queries']} test queries against {setup['database']} training images",
        "",
        f"Codes and binarised features at {setup['bits']} bits; full-precision features as the upper bound.",
        "",
        "| representation | bytes per image | precision@1 | precision@10 | precision@100 | mAP@100 "
        "| ms per query |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["retrieval"].items():
        lines.append(
            f"| {result_label(name)} | {r['bytes']} | {r['precision@1']:.3f} | {r['precision@10']:.3f} | "
            f"{r['precision@100']:.3f} | {r['mAP@100']:.3f} | {r['ms_per_query']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_codes_report(study, folder: Path, with_plot: bool = True, data=None) -> dict[str, Any]:
    """summary.json, table.md and, with ``with_plot``, the plots of the codes study's run files; ``data``
    (None: loaded here) gives the attribute grid its images."""
    runs = load_runs(folder, "seed*.json")
    if not runs:
        raise ValueError(
            f"no run files in {folder / 'runs'}: run `python -m benchmarks.quality.study {study.name}` first"
        )
    summary = summarize_codes(runs)
    write_summary(folder, summary, codes_markdown(summary))
    if with_plot:
        codes_plots(folder, runs, summary, data)
    return summary
