"""A study's plot, as its catalogue entry declares it: every seed of a one-value study, or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.quality.plots import COLORS, LABELS, plt
from benchmarks.quality.study.catalogue import SeedsPlot, Study, SweepPlot, ValuesPlot


def plot(summary: dict[str, Any], study: Study, path: Path, runs: list[dict[str, Any]] = ()) -> bool:
    """Draws the study's plot to ``path``; False when it has none, or nothing to show yet."""
    if isinstance(study.plot, SeedsPlot):
        return plot_seeds(list(runs), study, path)
    if isinstance(study.plot, SweepPlot):
        return plot_sweep(summary, study, study.plot, path)
    if isinstance(study.plot, ValuesPlot):
        return plot_values(list(runs), study, path)
    return False


def plot_values(runs: list[dict[str, Any]], study: Study, path: Path) -> bool:
    """Every seed's test accuracy per method at each value, the values side by side, linear probe and kNN
    in two panels; a bar marks each method's mean at a value."""
    finished = [r for r in runs if not r["row"].get("diverged") and r["row"].get("linear_top1") is not None]
    if not finished:
        return False
    methods = [m for m in study.methods if any(r["method"] == m for r in finished)]
    values = [v for v in study.values if any(r["value"] == v for r in finished)]
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 1.2 * len(values) * len(methods) / 2 + 3), 3.8))
    for ax, key, probe in zip(axes, ("linear_top1", "knn_top1"), ("linear", "kNN (k = 20)"), strict=True):
        labelled: set[str] = set()
        for v, value in enumerate(values):
            for m, method in enumerate(methods):
                scores = [r["row"][key] for r in finished if r["value"] == value and r["method"] == method]
                if not scores:
                    continue
                x = v - 0.4 + (m + 0.5) * width
                label = None if method in labelled else LABELS[method]
                labelled.add(method)
                ax.scatter([x] * len(scores), scores, color=COLORS[method], s=14, zorder=2, label=label)
                mean = sum(scores) / len(scores)
                ax.hlines(mean, x - width / 2.5, x + width / 2.5, color=COLORS[method], lw=2, zorder=3)
        ax.set_xticks(range(len(values)), [str(value) for value in values], fontsize=8)
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_ylabel(f"test {probe} top-1 (%)")
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    seeds = sorted({r["seed"] for r in finished})
    fig.suptitle(f"{study.name}: seeds {', '.join(map(str, seeds))}; a bar marks the mean", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_seeds(runs: list[dict[str, Any]], study: Study, path: Path) -> bool:
    """Every seed's test accuracy per method, linear probe and kNN side by side; a grey line joins the
    methods' runs of one seed (a pair), a bar marks each method's mean."""
    finished = [r for r in runs if not r["row"].get("diverged") and r["row"].get("linear_top1") is not None]
    if not finished:
        return False
    methods = [m for m in study.methods if any(r["method"] == m for r in finished)]
    seeds = sorted({r["seed"] for r in finished})
    fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 1.3 * len(methods) + 2.5), 3.6))
    for ax, key, probe in zip(axes, ("linear_top1", "knn_top1"), ("linear", "kNN (k = 20)"), strict=True):
        by = {(r["method"], r["seed"]): r["row"][key] for r in finished}
        for seed in seeds:
            pairs = [(x, by[m, seed]) for x, m in enumerate(methods) if (m, seed) in by]
            ax.plot(*zip(*pairs, strict=True), color="0.75", lw=1, zorder=1)
        for x, method in enumerate(methods):
            values = [by[method, seed] for seed in seeds if (method, seed) in by]
            ax.scatter([x] * len(values), values, color=COLORS[method], zorder=2, s=18)
            mean = sum(values) / len(values)
            ax.hlines(mean, x - 0.25, x + 0.25, color=COLORS[method], lw=2, zorder=3)
        ax.set_xticks(
            range(len(methods)), [LABELS[m] for m in methods], rotation=30 if len(methods) > 3 else 0
        )
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_ylabel(f"test {probe} top-1 (%)")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"{study.name}: {study.values[0]}; seeds {', '.join(map(str, seeds))} (grey lines join a seed)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_sweep(summary: dict[str, Any], study: Study, sweep: SweepPlot, path: Path) -> bool:
    """Test linear top-1 of every method at each value of the study's variable, mean ± std over seeds."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for method in study.methods:
        points = [
            (
                e["value"],
                e["methods"][method]["linear_top1"],
                e["methods"][method].get("linear_top1_std") or 0.0,
            )
            for e in summary["values"]
            if "linear_top1" in e["methods"].get(method, {})
        ]
        if points:
            x, y, err = zip(*points, strict=True)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=LABELS[method], color=COLORS[method])
    if sweep.log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(study.values), [str(v) for v in study.values])
    else:
        ax.set_xticks(list(study.values))
    ax.set_xlabel(sweep.xlabel)
    ax.set_ylabel("test linear top-1 (%)")
    ax.set_title(sweep.title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
