"""Paired comparisons over seeds: MUSIC minus each peer, a 95 % t-interval and a win / tie / loss verdict.

Every method is trained on the same seeds, and a seed fixes the initial weights, the pretraining images,
their order and their augmentations, so the runs of two methods on one seed form a pair. The verdict
rule (stated in docs/quality.md):

- **win** when the whole 95 % interval of the mean paired difference is above 0, **loss** when it is
  below 0, **tie** otherwise; the interval is built from a spread of at least one step of the accuracy
  (``MIN_SPREAD``), so seeds that agree to the image do not give an interval of width 0;
- **undecided** when fewer than two seeds give a pair (no interval from one difference);
- **diverged** when either method diverged on any seed: that method is named, its finished seeds are
  still paired and shown, but a method that is not stable at its settings gets no verdict.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

CONFIDENCE = 0.95
# The accuracies compared are percentages of about 10,000 evaluation images (the test splits of
# Fashion-MNIST and CIFAR, the tuning search's validation split), so a paired difference moves in steps
# of 0.01 points and two seeds can agree exactly. Such seeds measure no spread, not a spread of zero:
# the interval is built from a standard deviation of at least one step.
MIN_SPREAD = 0.01


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def mean_interval(
    values: list[float], confidence: float = CONFIDENCE, min_std: float = 0.0
) -> dict[str, Any]:
    """Mean, sample standard deviation and the t-interval of the mean (None below two values), the
    interval built from the larger of the sample standard deviation and ``min_std``."""
    n = len(values)
    out: dict[str, Any] = {"n": n, "mean": statistics.fmean(values) if values else None}
    if n < 2:
        return {**out, "std": None, "ci95": None}
    std = statistics.stdev(values)
    half = t_quantile(n - 1, confidence) * max(std, min_std) / math.sqrt(n)
    return {**out, "std": std, "ci95": [out["mean"] - half, out["mean"] + half]}


def verdict(interval: list[float] | None) -> str:
    if interval is None:
        return "undecided"
    low, high = interval
    return "win" if low > 0 else "loss" if high < 0 else "tie"


def paired_difference(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], metric: str
) -> dict[str, Any]:
    """``a - b`` on every seed where both have ``metric``; rows carry ``seed`` and the metric or None."""
    b_by_seed = {r["seed"]: r.get(metric) for r in rows_b}
    seeds, diffs = [], []
    for r in rows_a:
        a, b = r.get(metric), b_by_seed.get(r["seed"])
        if a is not None and b is not None:
            seeds.append(r["seed"])
            diffs.append(a - b)
    summary = mean_interval(diffs, min_std=MIN_SPREAD)
    return {"seeds": seeds, "differences": [round(d, 4) for d in diffs], **_rounded(summary)}


def _rounded(summary: dict[str, Any]) -> dict[str, Any]:
    out = dict(summary)
    for key in ("mean", "std"):
        if out.get(key) is not None:
            out[key] = round(out[key], 4)
    if out.get("ci95") is not None:
        out["ci95"] = [round(v, 4) for v in out["ci95"]]
    return out


def compare(
    per_seed: dict[str, list[dict[str, Any]]],
    reference: str,
    peers: tuple[str, ...],
    metrics: tuple[str, ...] = ("linear_top1", "knn_top1"),
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``reference`` minus every peer on every metric; the verdict is on the first metric."""
    names = names or {}
    diverged = [m for m in (reference, *peers) if any(r.get("diverged") for r in per_seed.get(m, []))]
    result: dict[str, Any] = {
        "reference": reference,
        "metric": metrics[0],
        "confidence": CONFIDENCE,
        "rule": (
            f"{metrics[0]} of {reference} minus the peer, paired by seed; win if the whole "
            f"{CONFIDENCE:.0%} t-interval of the mean difference is above 0, loss if below, tie otherwise "
            f"(its standard deviation at least {MIN_SPREAD} points, one evaluation image in 10,000); "
            "undecided with fewer than 2 paired seeds; diverged if either method diverged on any seed"
        ),
        "diverged": diverged,
        "peers": {},
    }
    for peer in peers:
        entry: dict[str, Any] = {
            metric: paired_difference(per_seed[reference], per_seed[peer], metric) for metric in metrics
        }
        first = entry[metrics[0]]
        entry["verdict"] = "diverged" if reference in diverged or peer in diverged else verdict(first["ci95"])
        result["peers"][peer] = entry
    result["summary"] = summary_line(result, per_seed, names)
    return result


def summary_line(
    comparison: dict[str, Any], per_seed: dict[str, list[dict[str, Any]]], names: dict[str, str]
) -> str:
    """The verdicts in one plain sentence per peer, naming any method that diverged."""
    metric, ref = comparison["metric"], comparison["reference"]
    parts = []
    for peer, entry in comparison["peers"].items():
        d = entry[metric]
        label = names.get(peer, peer)
        if d["mean"] is None:
            numbers = "no seed where both finished"
        elif d["ci95"] is None:
            numbers = f"{d['mean']:+.2f} points on {d['n']} seed"
        else:
            low, high = d["ci95"]
            numbers = f"{d['mean']:+.2f} points, 95% interval [{low:+.2f}, {high:+.2f}] over {d['n']} seeds"
        parts.append(f"vs {label}: {entry['verdict']} ({numbers})")
    lines = [f"{names.get(ref, ref)} {metric} minus each peer, paired by seed: " + "; ".join(parts) + "."]
    for method in comparison["diverged"]:
        events = [r["diverged"] for r in per_seed[method] if r.get("diverged")]
        where = ", ".join(
            f"seed {e['seed']} (epoch {e['epoch']}, step {e['step']}, last finite loss "
            f"{_fmt_loss(e['last_finite_loss'])}, {e['reason']})"
            for e in events
        )
        lines.append(f"{names.get(method, method)} diverged: {where}.")
    return " ".join(lines)


def _fmt_loss(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
