"""A study's ``summary.json`` and ``table.md`` from its run files alone: per value, each method's mean
over seeds, MUSIC's paired verdicts against its peers and, with a reference value, each method against
itself there. The main run's and the search's tables are in ``main_report``, the codes study's in
``codes_report``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.quality.names import NAMES, Name, value_label
from benchmarks.quality.ssl_methods import ALL_METHODS, SUPERVISED
from benchmarks.quality.stats import compare
from benchmarks.quality.study.store import load_runs, write_summary

# The cost of a method, recorded with each run (`benchmarks.quality.run.train_and_evaluate`).
COST_KEYS = ("seconds_per_epoch", "cpu_seconds_per_epoch", "peak_step_mib")
# How many attributes MUSIC's hard codes of the test images use per segment, recorded with its runs since
# the temperature studies (`benchmarks.quality.attributes.hard_code_usage`); older runs lack them.
CODE_KEYS = ("code_attributes_used", "code_effective_attributes")


def study_names(study) -> dict[str, Name]:
    """What the study's tables call each method: its usual name, unless the study names it otherwise."""
    return {**NAMES, **dict(study.names)}


def summarize_runs(study, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per value: per method mean, std and number of seeds, diverged seeds, MUSIC's paired verdicts, and,
    for a study with a reference value, each method's paired verdict against itself there."""
    summary: dict[str, Any] = {
        "study": study.name,
        "kind": study.kind.name,
        "variable": study.variable,
        "values": [],
    }
    names = {key: name.full for key, name in study_names(study).items()}
    rows_at: list[tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]] = []
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
            keys = ("linear_top1", "knn_top1", "final_loss", "epochs_run", *CODE_KEYS)
            if study.per_method_table:
                keys += COST_KEYS
            for key in keys:
                values = [r[key] for r in finished if isinstance(r.get(key), int | float)]
                if values:
                    stats[key] = round(statistics.fmean(values), 4)
                    stats[f"{key}_std"] = round(statistics.stdev(values), 4) if len(values) > 1 else None
            entry["methods"][method] = stats
        # The supervised ceiling is no peer: every method's mean reads as a share of it (`_ceiling`).
        peers = tuple(m for m in ALL_METHODS if m not in ("music", SUPERVISED) and m in rows_by_method)
        if study.kind.verdicts and "music" in rows_by_method and peers:
            entry["comparison"] = compare(rows_by_method, "music", peers, names=names)
        summary["values"].append(entry)
        rows_at.append((entry, rows_by_method))
    reference = next((rows for e, rows in rows_at if e["value"] == study.reference_value), None)
    if study.kind.verdicts and study.reference_value is not None and reference is not None:
        for entry, rows_by_method in rows_at:
            if entry["value"] != study.reference_value:
                entry["versus_reference"] = versus_reference(
                    rows_by_method,
                    reference,
                    names,
                    value_label(entry["value"]),
                    value_label(study.reference_value),
                )
                _mark_times_across_studies(
                    entry["versus_reference"], runs, entry["value"], study.reference_value
                )
    return summary


def _origin(run: dict[str, Any]) -> str:
    """Where a run file's row was trained: ``"here"`` by the study itself, else the study it was copied
    from (``"<study>/runs/<file>"`` under ``from``) or ``"the main run"`` (a main run's command)."""
    source = run.get("from")
    if source is None:
        return "here"
    return source.split("/runs/")[0] if "/runs/" in source else "the main run"


def _mark_times_across_studies(
    versus: dict[str, Any], runs: list[dict[str, Any]], value: Any, reference_value: Any
) -> None:
    """Name the other studies in a time ratio whose two sides were not trained by the same study: the
    runs were then trained at other times, and this machine's speed drifts from day to day, so the
    ratio is no side-by-side measurement."""
    for method, v in versus.items():
        here, there = (
            {_origin(r) for r in runs if r["method"] == method and r["value"] == at}
            for at in (value, reference_value)
        )
        if here != there:
            v["time_across"] = sorted((here | there) - {"here"})


def versus_reference(
    rows_by_method: dict[str, list[dict[str, Any]]],
    reference: dict[str, list[dict[str, Any]]],
    names: dict[str, str],
    here: str,
    there: str,
) -> dict[str, Any]:
    """Each method at one value (labelled ``here``) minus the same method at the reference value
    (``there``), paired by seed, with the verdict rule of MUSIC against a peer (`stats.compare`), and the
    ratio of their mean pretraining wall-clock times."""
    out: dict[str, Any] = {}
    for method in (m for m in ALL_METHODS if m in rows_by_method and m in reference):
        label = names.get(method, method)
        pair = {f"{label} at {here}": rows_by_method[method], f"{label} at {there}": reference[method]}
        comparison = compare(pair, f"{label} at {here}", (f"{label} at {there}",))
        out[method] = dict(next(iter(comparison["peers"].values())))
        seconds = [_mean_seconds(rows) for rows in (rows_by_method[method], reference[method])]
        out[method]["time_ratio"] = (
            round(seconds[0] / seconds[1], 3) if None not in seconds and seconds[1] > 0 else None
        )
    return out


def _mean_seconds(rows: list[dict[str, Any]]) -> float | None:
    seconds = [
        r["seconds"] for r in rows if not r.get("diverged") and isinstance(r.get("seconds"), int | float)
    ]
    return statistics.fmean(seconds) if seconds else None


def per_method_markdown(
    entry: dict[str, Any], methods: list[str], names: dict[str, Name] = NAMES
) -> list[str]:
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
            verdict = f" ({peers[method]['verdict']})" if metric == "linear_top1" else ""
            versus.append(difference(d) + verdict)
        lines.append(
            f"| {names[method].full} | {_cell(stats, 'linear_top1')} | {_cell(stats, 'knn_top1')} | "
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


def difference(d: dict[str, Any]) -> str:
    """A paired difference (`stats.paired_difference`): its mean and 95 % interval, "–" without a pair."""
    if d["mean"] is None:
        return "–"
    return f"{d['mean']:+.2f}" + ("" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]")


def _verdicts(entry: dict[str, Any], names: dict[str, Name] = NAMES) -> str:
    """MUSIC minus each peer at one value: mean difference, 95 % interval and verdict."""
    verdicts = []
    for peer, c in entry.get("comparison", {}).get("peers", {}).items():
        verdicts.append(f"{names[peer].short}: {difference(c['linear_top1'])} ({c['verdict']})")
    return "; ".join(verdicts)


def versus_reference_markdown(
    summary: dict[str, Any], study, methods: list[str], names: dict[str, Name]
) -> list[str]:
    """Each method at every other value minus itself at the reference value: one row per value."""
    entries = [e for e in summary["values"] if "versus_reference" in e]
    methods = [m for m in methods if any(m in e["versus_reference"] for e in entries)]
    if not methods:
        return []
    reference = value_label(study.reference_value)
    lines = [
        "",
        f"Each method minus itself at {reference}, paired by seed: linear top-1 with its 95 % interval and "
        f"verdict, kNN top-1 with its interval, and the mean pretraining wall-clock time over that at "
        f"{reference}:",
        "",
        f"| {study.variable} | " + " | ".join(names[m].full for m in methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    across: set[str] = set()
    for entry in entries:
        cells = []
        for method in methods:
            v = entry["versus_reference"].get(method)
            if v is None:
                cells.append("–")
                continue
            time = "" if v["time_ratio"] is None else f"; time x{v['time_ratio']:.2f}"
            if time and v.get("time_across"):
                time += "†"
                across.update(v["time_across"])
            cells.append(
                f"{difference(v['linear_top1'])} ({v['verdict']}); kNN {difference(v['knn_top1'])}{time}"
            )
        lines.append(f"| {value_label(entry['value'])} | " + " | ".join(cells) + " |")
    if across:
        studies = " and ".join(f"`{name}`" if name != "the main run" else name for name in sorted(across))
        lines += [
            "",
            f"† One side's runs are copied from {studies} (each run file names its source), trained at "
            "another time: this time ratio is no side-by-side measurement.",
        ]
    return lines


def _ceiling(summary: dict[str, Any], study, methods: list[str], names: dict[str, Name]) -> list[str]:
    """Each method's mean test linear top-1 as a share of the supervised ceiling's at the same value."""
    lines = []
    for entry in summary["values"]:
        ceiling = entry["methods"].get(SUPERVISED, {}).get("linear_top1")
        if ceiling is None or not study.kind.verdicts:
            continue
        shares = [
            f"{names[m].short} {100 * entry['methods'][m]['linear_top1'] / ceiling:.1f} %"
            for m in methods
            if m != SUPERVISED and "linear_top1" in entry["methods"].get(m, {})
        ]
        lines += [
            "",
            f"At {value_label(entry['value'])}, as a share of the supervised ceiling's {ceiling:.2f} "
            "(the same backbone and head trained with the labels on the same images, views, schedule "
            "and optimizer, probed the same way): " + ", ".join(shares) + ".",
        ]
    return lines


def hard_codes_markdown(summary: dict[str, Any], study) -> list[str]:
    """MUSIC's hard codes at each value: attributes used per segment and their effective number."""
    entries = [e for e in summary["values"] if "code_attributes_used" in e["methods"].get("music", {})]
    if not entries:
        return []
    lines = [
        "",
        "MUSIC's hard codes of the test images (each image's most likely attribute per segment), mean "
        "over segments and seeds: attributes that code at least one image, and exp of the entropy of how "
        "the images spread over them:",
        "",
        f"| {study.variable} | attributes used per segment | effective attributes per segment |",
        "|---|---:|---:|",
    ]
    for entry in entries:
        music = entry["methods"]["music"]
        cells = [f"{music[k]:.1f}" + _std(music.get(f"{k}_std")) for k in CODE_KEYS]
        lines.append(f"| {value_label(entry['value'])} | " + " | ".join(cells) + " |")
    return lines


def _std(std: float | None) -> str:
    return "" if std is None else f" ± {std:.1f}"


def markdown(summary: dict[str, Any], study) -> str:
    key = study.kind.key
    # The study's methods that have a finished run: a screening of some methods (stability's first
    # epochs) shows no columns of dashes for the others.
    finished = {m for entry in summary["values"] for m in entry["methods"]}
    methods = [m for m in ALL_METHODS if m in study.methods and m in finished]
    names = study_names(study)
    options = study.music_at_chosen_options
    lines = [
        f"Study `{study.name}`: {study.kind.measure}, mean ± std over seeds (n = seeds that finished).",
        "",
        f"| {study.variable} | "
        + ("MUSIC's options | " if options else "")
        + " | ".join(names[m].full for m in methods)
        + " |"
        + (" MUSIC minus peers (verdict) |" if study.kind.verdicts else ""),
        "|---|"
        + ("---|" if options else "")
        + "---:|" * len(methods)
        + ("---|" if study.kind.verdicts else ""),
    ]
    for entry in summary["values"]:
        cells = [_cell(entry["methods"].get(m), key) for m in methods]
        line = f"| {value_label(entry['value'])} | "
        if options:
            line += "; ".join(_music_options(p) for p in entry["music_params"]) + " | "
        line += " | ".join(cells) + " |"
        if study.kind.verdicts:
            line += " " + _verdicts(entry, names) + " |"
        lines.append(line)
    diverged = [
        f"{names[m].full} at {value_label(e['value'])}: "
        + ", ".join(
            f"seed {d['seed']} (epoch {d['epoch']}, step {d['step']}, {d['reason']})" for d in s["diverged"]
        )
        for e in summary["values"]
        for m, s in e["methods"].items()
        if s["diverged"]
    ]
    if diverged:
        lines += ["", "Diverged: " + "; ".join(diverged) + "."]
    lines += _ceiling(summary, study, methods, names)
    lines += versus_reference_markdown(summary, study, methods, names)
    lines += hard_codes_markdown(summary, study)
    if study.per_method_table:
        for entry in summary["values"]:
            lines += per_method_markdown(entry, methods, names)
    return "\n".join(lines) + "\n"


def write_report(study, folder: Path, with_plot: bool = True) -> dict[str, Any]:
    """Summary, table and plot of every run file of the study, whichever ``--values`` made them."""
    runs = load_runs(folder)
    summary = summarize_runs(study, runs)
    write_summary(folder, summary, markdown(summary, study))
    if with_plot and study.plot is not None:
        study.plot.draw(summary, study, folder / f"{study.name}.png", runs)
    return summary
