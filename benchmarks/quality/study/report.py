"""Every table and summary of the quality benchmark, from its recorded results alone: the main run's
table (results.json), the search's (tuned.json), each study's ``summary.json`` and ``table.md`` from its
run files, and the codes study's."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.quality.names import NAMES, Name, full_name, result_label, value_label
from benchmarks.quality.ssl_methods import ALL_METHODS, SUPERVISED
from benchmarks.quality.stats import compare
from benchmarks.quality.study.plots import codes_plots, write_plots
from benchmarks.quality.study.store import load_runs


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


def _interval(d: dict[str, Any]) -> str:
    if d["mean"] is None:
        return "–"
    if d["ci95"] is None:
        return f"{d['mean']:+.2f}"
    return f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"


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
            f"| {full_name(peer)} | {_interval(d)} | {per_seed or '–'} "
            f"| {_interval(knn) if knn else '–'} | **{entry['verdict']}** |"
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
            ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
            verdict = f" ({peers[method]['verdict']})" if metric == "linear_top1" else ""
            versus.append(f"{d['mean']:+.2f}{ci}{verdict}")
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


def _difference(d: dict[str, Any]) -> str:
    """A paired difference: its mean and 95 % interval."""
    ci = "" if d["ci95"] is None else f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
    mean = "–" if d["mean"] is None else f"{d['mean']:+.2f}"
    return mean + ci


def _verdicts(entry: dict[str, Any], names: dict[str, Name] = NAMES) -> str:
    """MUSIC minus each peer at one value: mean difference, 95 % interval and verdict."""
    verdicts = []
    for peer, c in entry.get("comparison", {}).get("peers", {}).items():
        verdicts.append(f"{names[peer].short}: {_difference(c['linear_top1'])} ({c['verdict']})")
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
                f"{_difference(v['linear_top1'])} ({v['verdict']}); kNN {_difference(v['knn_top1'])}{time}"
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
    _write(folder, summary, markdown(summary, study))
    if with_plot and study.plot is not None:
        study.plot.draw(summary, study, folder / f"{study.name}.png", runs)
    return summary


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
    _write(folder, summary, codes_markdown(summary))
    if with_plot:
        codes_plots(folder, runs, summary, data)
    return summary


def write_main_report(study, folder: Path, with_plot: bool = True, artifacts=None) -> dict[str, Any]:
    """The main run's table.md from its results.json; with ``with_plot`` its plots (MUSIC's attributes too
    when ``artifacts`` holds them)."""
    results = json.loads((folder / "results.json").read_text())
    _write(folder, results, markdown_table(results), "results.json")
    if with_plot:
        write_plots(results, artifacts, folder)
    return results


def write_tuning_report(study, folder: Path, with_plot: bool = True) -> dict[str, Any]:
    """The search's tuning.md from its tuning.json (an entry of tuned.json)."""
    entry = json.loads((folder / "tuning.json").read_text())
    _write(folder, entry, tuning_table(entry), "tuning.json", "tuning.md")
    return entry


def _write(
    folder: Path, summary: dict[str, Any], table: str, name="summary.json", table_name="table.md"
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(summary, indent=2) + "\n")
    (folder / table_name).write_text(table)
