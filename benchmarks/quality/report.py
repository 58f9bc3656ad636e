"""results.json -> markdown table."""

from __future__ import annotations

from typing import Any

NAMES = {
    "music": "MUSIC (music-ssl)",
    "barlow_twins": "Barlow Twins (lightly)",
    "vicreg": "VICReg (lightly)",
    "raw_pixels": "raw pixels",
    "random_init": "random-init backbone",
}


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _acc(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "–"
    std = row.get(f"{key}_std")
    return _fmt(row[key]) + (f" ± {std:.2f}" if std is not None else "")


def markdown_table(results: dict[str, Any]) -> str:
    ks = results.get("config", {}).get("profile", {}).get("knn_ks", [20, 200])
    header = (
        f"| method | linear top-1 (%) | kNN top-1 k={ks[0]} (%) | kNN top-1 k={ks[-1]} (%) "
        "| pretrain s | s / epoch | hyper-parameters |\n|---|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for key, name in NAMES.items():
        row = results["methods"].get(key)
        if row is None:
            continue
        params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items())
        lines.append(
            f"| {name} | {_acc(row, 'linear_top1')} | {_acc(row, 'knn_top1')} "
            f"| {_acc(row, f'knn_top1_k{ks[-1]}')} "
            f"| {_fmt(row.get('seconds'), 0) if key not in ('raw_pixels', 'random_init') else '–'} "
            f"| {_fmt(row.get('seconds_per_epoch'), 1)} | {params} |"
        )
    table = header + "\n".join(lines) + "\n"
    t = results.get("targets")
    if t:
        table += (
            f"\nTargets: MUSIC >= both peers: **{'yes' if t['music_ge_peers'] else 'no'}** "
            f"(MUSIC - best peer = {t['music_minus_best_peer']:+.2f} points); MUSIC >= raw pixels + 3: "
            f"**{'yes' if t['music_ge_raw_pixels_plus_3'] else 'no'}** "
            f"(MUSIC - raw pixels = {t['music_minus_raw_pixels']:+.2f} points).\n"
        )
    return table


def tuning_table(entry: dict[str, Any]) -> str:
    """The search's grid with validation scores, chosen rows in bold."""
    lines = [
        "| method | stage | lr | loss options | val linear top-1 (%) | val kNN top-1 (%) | s |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    order = [m for m in NAMES if m in entry["trials"]]
    for method in order:
        rows = entry["trials"][method]
        chosen = entry["chosen"][method]
        for r in rows:
            opts = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "lr")
            mark = "**" if r["params"] == chosen else ""
            score = "diverged" if r.get("diverged") else f"{r['linear_top1']:.2f}"
            knn = "–" if r.get("diverged") else f"{r['knn_top1']:.2f}"
            lines.append(
                f"| {mark}{method}{mark} | {r['stage']} | {r['params']['lr']} | {opts} "
                f"| {mark}{score}{mark} | {knn} | {r['seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"
