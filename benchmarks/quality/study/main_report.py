"""The main run's table (from results.json, with MUSIC's paired verdicts against each peer) and the
tuning search's (from tuning.json, with what the search says of each method's hyper-parameters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.quality.names import NAMES, full_name
from benchmarks.quality.study.plots import write_plots
from benchmarks.quality.study.report import difference
from benchmarks.quality.study.store import write_summary


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _acc(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "–"
    if row[key] is None:
        return "diverged"
    std = row.get(f"{key}_std")
    return _fmt(row[key]) + (f" ± {std:.2f}" if std is not None else "")


def _seeds(row: dict[str, Any]) -> str:
    seeds = row.get("seeds", [])
    bad = [d["seed"] for d in row.get("diverged", [])]
    return f"{len(seeds) - len(bad)}/{len(seeds)}" + (
        f" (diverged: {', '.join(map(str, bad))})" if bad else ""
    )


def comparison_table(comparison: dict[str, Any]) -> str:
    """MUSIC minus each peer, paired by seed: mean difference, 95 % t-interval, per-seed values, verdict."""
    metric = comparison["metric"]
    lines = [
        f"| {full_name(comparison['reference'])} minus | {metric} "
        "(points) [95% interval] | per seed | kNN top-1 (points) [95% interval] | verdict |",
        "|---|---:|---|---:|---|",
    ]
    for peer, entry in comparison["peers"].items():
        d = entry[metric]
        per_seed = ", ".join(f"{s}: {v:+.2f}" for s, v in zip(d["seeds"], d["differences"], strict=True))
        knn = entry.get("knn_top1")
        lines.append(
            f"| {full_name(peer)} | {difference(d)} | {per_seed or '–'} "
            f"| {difference(knn) if knn else '–'} | **{entry['verdict']}** |"
        )
    return "\n".join(lines) + "\n\n" + comparison["summary"] + "\n\nRule: " + comparison["rule"] + ".\n"


def markdown_table(results: dict[str, Any]) -> str:
    ks = results.get("config", {}).get("profile", {}).get("knn_ks", [20, 200])
    header = (
        f"| method | seeds | linear top-1 (%) | kNN top-1 k={ks[0]} (%) | kNN top-1 k={ks[-1]} (%) "
        "| pretrain s | s / epoch | hyper-parameters |\n|---|---|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for key, name in NAMES.items():
        row = results["methods"].get(key)
        if row is None:
            continue
        params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items())
        lines.append(
            f"| {name.full} | {_seeds(row)} | {_acc(row, 'linear_top1')} | {_acc(row, 'knn_top1')} "
            f"| {_acc(row, f'knn_top1_k{ks[-1]}')} "
            f"| {_fmt(row.get('seconds'), 0) if key not in ('raw_pixels', 'random_init') else '–'} "
            f"| {_fmt(row.get('seconds_per_epoch'), 1)} | {params} |"
        )
    table = header + "\n".join(lines) + "\n"
    if results.get("comparison"):
        table += "\n" + comparison_table(results["comparison"])
    return table


def tuning_table(entry: dict[str, Any]) -> str:
    """The search's grid with validation scores, chosen rows in bold; a method whose search has not
    chosen yet is marked as in progress."""
    lines = [
        "| method | stage | lr | loss options | val linear top-1 (%) | val kNN top-1 (%) | s |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    order = [m for m in NAMES if m in entry["trials"]]
    for method in order:
        rows = entry["trials"][method]
        chosen = entry["chosen"].get(method)
        if chosen is None:
            lines.append(f"| {method} (search in progress) | | | | | | |")
        for r in rows:
            opts = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "lr")
            mark = "**" if r["params"] == chosen else ""
            score = "diverged" if r.get("diverged") else f"{r['linear_top1']:.2f}"
            knn = "–" if r.get("diverged") else f"{r['knn_top1']:.2f}"
            lines.append(
                f"| {mark}{method}{mark} | {r['stage']} | {r['params']['lr']} | {opts} "
                f"| {mark}{score}{mark} | {knn} | {r['seconds']:.0f} |"
            )
    for method, override in entry.get("safety_overrides", {}).items():
        lines.append(
            f"\n{method}: the main run uses {override['chosen']} instead of the searched "
            f"{override['searched']}: {override['why']}"
        )
    return "\n".join(lines) + "\n"


def sensitivity_table(entry: dict[str, Any]) -> str:
    """What each method's search says about its hyper-parameters: the spread of validation linear top-1
    over its learning rates (at its default loss options) and over its loss options (at its best learning
    rate), and how many candidates diverged on a seed."""
    lines = [
        "| method | learning rates tried | spread over them (points) | loss options at the best lr "
        "| spread over them (points) | candidates diverged |",
        "|---|---|---:|---|---:|---:|",
    ]
    for method in [m for m in NAMES if m in entry["trials"]]:
        rows = entry["trials"][method]
        finished = [r for r in rows if not r.get("diverged") and r.get("linear_top1") is not None]
        stage1 = [r for r in finished if r["stage"] == 1]
        best_lr = max(finished, key=lambda r: r["linear_top1"])["params"]["lr"] if finished else None
        at_best = [r for r in finished if r["params"]["lr"] == best_lr]
        lrs = sorted({r["params"]["lr"] for r in rows if r["stage"] == 1})

        def spread(group: list[dict[str, Any]]) -> str:
            scores = [r["linear_top1"] for r in group]
            return f"{max(scores) - min(scores):.2f}" if len(scores) > 1 else "–"

        lines.append(
            f"| {NAMES[method].full} | {', '.join(map(str, lrs))} | {spread(stage1)} | {len(at_best)} "
            f"| {spread(at_best)} | {sum(1 for r in rows if r.get('diverged'))} of {len(rows)} |"
        )
    return "\n".join(lines) + "\n"


def write_main_report(study, folder: Path, with_plot: bool = True, artifacts=None) -> dict[str, Any]:
    """The main run's table.md from its results.json; with ``with_plot`` its plots (MUSIC's attributes too
    when ``artifacts`` holds them)."""
    results = json.loads((folder / "results.json").read_text())
    write_summary(folder, results, markdown_table(results), "results.json")
    if with_plot:
        write_plots(results, artifacts, folder)
    return results


def write_tuning_report(study, folder: Path, with_plot: bool = True) -> dict[str, Any]:
    """The search's tuning.md from its tuning.json (an entry of tuned.json)."""
    entry = json.loads((folder / "tuning.json").read_text())
    write_summary(folder, entry, tuning_table(entry), "tuning.json", "tuning.md")
    return entry
