"""A study's report, from its run files alone: ``summary.json``, ``table.md`` and the study's plot."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.quality.names import NAMES, full_names
from benchmarks.quality.ssl_methods import FIELD_METHODS
from benchmarks.quality.stats import compare
from benchmarks.quality.study.catalogue import Study, value_label
from benchmarks.quality.study.plots import plot
from benchmarks.quality.study.store import load_runs

# The cost of a method, recorded with each run (`benchmarks.quality.run.train_and_evaluate`).
COST_KEYS = ("seconds_per_epoch", "cpu_seconds_per_epoch", "peak_step_mib")
# What a study's table shows, by its kind.
MEASURES = {
    "test": "test linear top-1 (%)",
    "validation": "validation linear top-1 (%)",
    "pretrain": "final loss",
}


def summarize_runs(study: Study, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per value: per method mean, std and number of seeds, diverged seeds, and MUSIC's paired verdicts."""
    summary: dict[str, Any] = {
        "study": study.name,
        "kind": study.kind,
        "variable": study.variable,
        "values": [],
    }
    for value in study.values:
        rows_by_method: dict[str, list[dict[str, Any]]] = {}
        music_params: list[dict[str, Any]] = []
        for r in runs:
            if r["value"] == value:
                rows_by_method.setdefault(r["method"], []).append(r["row"])
                if r["method"] == "music" and r["settings"]["params"] not in music_params:
                    music_params.append(r["settings"]["params"])
        if not rows_by_method:
            continue
        entry: dict[str, Any] = {"value": value, "methods": {}}
        if study.music_at_chosen_options:
            entry["music_params"] = music_params
        for method, rows in rows_by_method.items():
            rows.sort(key=lambda r: r["seed"])
            finished = [r for r in rows if not r.get("diverged")]
            stats: dict[str, Any] = {
                "seeds": [r["seed"] for r in rows],
                "diverged": [r["diverged"] for r in rows if r.get("diverged")],
                "wall_seconds": round(sum(r.get("wall_seconds", 0.0) for r in rows), 1),
            }
            keys = ("linear_top1", "knn_top1", "final_loss", "epochs_run")
            if study.per_method_table:
                keys += COST_KEYS
            for key in keys:
                values = [r[key] for r in finished if isinstance(r.get(key), int | float)]
                if values:
                    stats[key] = round(statistics.fmean(values), 4)
                    stats[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else None
            entry["methods"][method] = stats
        peers = tuple(m for m in FIELD_METHODS if m != "music" and m in rows_by_method)
        if study.kind == "test" and "music" in rows_by_method and peers:
            entry["comparison"] = compare(rows_by_method, "music", peers, names=full_names())
        summary["values"].append(entry)
    return summary


def per_method_markdown(entry: dict[str, Any], methods: list[str]) -> list[str]:
    """One value's methods as rows: both probes, the cost, MUSIC minus the method on both probes."""
    lines = [
        "",
        f"At the {entry['value']} settings, method by method (wall-clock and CPU seconds per epoch and "
        "peak memory of a training step, measured in the same runs, on this machine):",
        "",
        "| method | linear top-1 (%) | kNN top-1 (%) | s / epoch | CPU s / epoch | peak step memory (MiB) "
        "| MUSIC minus it, linear | MUSIC minus it, kNN |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    peers = entry.get("comparison", {}).get("peers", {})
    for method in methods:
        stats = entry["methods"].get(method)
        if stats is None:
            continue
        cost = [f"{stats[k]:.1f}" if k in stats else "–" for k in COST_KEYS]
        versus = []
        for metric in ("linear_top1", "knn_top1"):
            d = peers.get(method, {}).get(metric)
            if not d or d["mean"] is None:
                versus.append("–")
                continue
            ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
            verdict = f" ({peers[method]['verdict']})" if metric == "linear_top1" else ""
            versus.append(f"{d['mean']:+.2f}{ci}{verdict}")
        lines.append(
            f"| {NAMES[method].full} | {_cell(stats, 'linear_top1')} | {_cell(stats, 'knn_top1')} | "
            + " | ".join(cost)
            + " | "
            + " | ".join(versus)
            + " |"
        )
    return lines


def _cell(stats: dict[str, Any] | None, key: str) -> str:
    if stats is None:
        return "–"
    n_done = len(stats["seeds"]) - len(stats["diverged"])
    bad = f", {len(stats['diverged'])} diverged" if stats["diverged"] else ""
    if key not in stats:
        return f"– (n={n_done}{bad})"
    std = stats.get(f"{key}_std")
    return f"{stats[key]:.2f}" + (f" ± {std:.2f}" if std is not None else "") + f" (n={n_done}{bad})"


def _music_options(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items() if k != "lr")


def _verdicts(entry: dict[str, Any]) -> str:
    """MUSIC minus each peer at one value: mean difference, 95 % interval and verdict."""
    verdicts = []
    for peer, c in entry.get("comparison", {}).get("peers", {}).items():
        d = c["linear_top1"]
        ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
        mean = "–" if d["mean"] is None else f"{d['mean']:+.2f}"
        verdicts.append(f"{NAMES[peer].short}: {mean}{ci} ({c['verdict']})")
    return "; ".join(verdicts)


def markdown(summary: dict[str, Any], study: Study) -> str:
    key = "final_loss" if study.kind == "pretrain" else "linear_top1"
    methods = [m for m in FIELD_METHODS if m in study.methods]
    options = study.music_at_chosen_options
    lines = [
        f"Study `{study.name}`: {MEASURES[study.kind]}, mean ± std over seeds (n = seeds that finished).",
        "",
        f"| {study.variable} | "
        + ("MUSIC's options | " if options else "")
        + " | ".join(NAMES[m].full for m in methods)
        + " |"
        + (" MUSIC minus peers (verdict) |" if study.kind == "test" else ""),
        "|---|"
        + ("---|" if options else "")
        + "---:|" * len(methods)
        + ("---|" if study.kind == "test" else ""),
    ]
    for entry in summary["values"]:
        cells = [_cell(entry["methods"].get(m), key) for m in methods]
        line = f"| {value_label(entry['value'])} | "
        if options:
            line += "; ".join(_music_options(p) for p in entry["music_params"]) + " | "
        line += " | ".join(cells) + " |"
        if study.kind == "test":
            line += " " + _verdicts(entry) + " |"
        lines.append(line)
    diverged = [
        f"{NAMES[m].full} at {value_label(e['value'])}: "
        + ", ".join(
            f"seed {d['seed']} (epoch {d['epoch']}, step {d['step']}, {d['reason']})" for d in s["diverged"]
        )
        for e in summary["values"]
        for m, s in e["methods"].items()
        if s["diverged"]
    ]
    if diverged:
        lines += ["", "Diverged: " + "; ".join(diverged) + "."]
    if study.per_method_table:
        for entry in summary["values"]:
            lines += per_method_markdown(entry, methods)
    return "\n".join(lines) + "\n"


def write_report(study: Study, out: Path, with_plot: bool = True) -> dict[str, Any]:
    """Summary, table and plot of every run file of the study, whichever ``--values`` made them."""
    runs = load_runs(out, study)
    summary = summarize_runs(study, runs)
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "table.md").write_text(markdown(summary, study))
    if with_plot:
        plot(summary, study, folder / f"{study.name}.png", runs)
    return summary
