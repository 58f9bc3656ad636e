"""Every plot of the quality benchmark (matplotlib, Agg backend, small PNG files): the main run's, each
study's as its declaration asks, and the codes study's; the colours every plot gives the methods."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmarks.quality.attributes import code_usage, entropy  # noqa: E402
from benchmarks.quality.names import NAMES, result_label  # noqa: E402
from music_ssl import cluster_sizes  # noqa: E402

COLORS = {
    "music": "tab:red",
    "barlow_twins": "tab:blue",
    "vicreg": "tab:green",
    "simclr": "tab:purple",
    "lejepa": "tab:brown",
    "visreg": "tab:pink",
    "wmse": "tab:olive",
    "supervised": "tab:gray",
}
# The plotted methods, in the order they are drawn, by their short names.
LABELS = {method: NAMES[method].short for method in COLORS}
DPI = 100


def _save(fig, path: Path, dpi: int = DPI, layout: bool = True) -> None:
    if layout:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def accuracy_over_epochs(results: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for method, label in LABELS.items():
        history = results["methods"].get(method, {}).get("history")
        if not history:
            continue
        points = [(h["epoch"], h["knn_monitor"]) for h in history if h.get("knn_monitor") is not None]
        ax.plot(*zip(*points, strict=True), marker="o", label=label, color=COLORS[method])
    raw = results["methods"].get("raw_pixels", {}).get("knn_top1")
    if raw is not None:
        ax.axhline(raw, ls="--", color="gray", lw=1, label="raw pixels (full kNN)")
    cfg = results.get("config", {}).get("profile", {})
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"kNN top-1 (%), k={cfg.get('knn_ks', [20])[0]}")
    ax.set_title(
        f"kNN monitor: {cfg.get('monitor_bank', '?')} train / {cfg.get('monitor_queries', '?')} test images",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def time_per_epoch(results: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    methods = [m for m in LABELS if m in results["methods"]]
    for i, method in enumerate(methods):
        history = [h for h in results["methods"][method].get("history", []) if h["epoch"] > 0]
        times = [h["seconds"] for h in history]
        ax.bar(i, sum(times) / max(1, len(times)), color=COLORS[method], alpha=0.8)
        ax.scatter([i] * len(times), times, color="black", s=8, zorder=3)
    ax.set_xticks(range(len(methods)), [LABELS[m] for m in methods])
    ax.set_ylabel("seconds per epoch")
    ax.set_title(f"pretraining time per epoch ({results.get('versions', {}).get('device', '')})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def attribute_usage(probs: torch.Tensor, path: Path) -> None:
    """Heat map of every segment's hard-code usage (sorted) and the entropy of soft and hard usage."""
    num_segments, num_attributes = probs.shape[1:]
    used = code_usage(probs)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
    im = ax1.imshow(used.sort(dim=1, descending=True).values.numpy(), aspect="auto", cmap="viridis", vmin=0)
    ax1.set_xlabel("attribute (sorted by use)")
    ax1.set_ylabel("segment")
    ax1.set_title("share of test images coded to each attribute (argmax)", fontsize=9)
    fig.colorbar(im, ax=ax1, fraction=0.046)
    x = torch.arange(num_segments).numpy()
    ax2.bar(x - 0.2, entropy(probs.mean(0)).numpy(), width=0.4, color="tab:orange", label="soft marginal")
    ax2.bar(x + 0.2, entropy(used).numpy(), width=0.4, color="tab:red", label="argmax codes")
    ax2.axhline(
        float(torch.tensor(num_attributes).log()), ls="--", color="gray", lw=1, label="log C (uniform)"
    )
    ax2.set_xlabel("segment")
    ax2.set_ylabel("attribute entropy (nats)")
    ax2.set_title("entropy of attribute use per segment (test set)", fontsize=9)
    ax2.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def attribute_grid(
    probs: torch.Tensor,
    images: torch.Tensor,
    path: Path,
    num_segments: int = 2,
    rows: int = 5,
    cols: int = 10,
) -> None:
    """Real test images that MUSIC codes to the same attribute: one row per attribute.

    For the ``num_segments`` segments whose argmax codes are spread most evenly, the ``rows`` most used
    attributes, each with the ``cols`` images most confidently coded to it.
    """
    codes = probs.argmax(-1)
    sizes = cluster_sizes(codes, probs.shape[-1])
    segments = entropy(code_usage(probs)).argsort(descending=True)[:num_segments].tolist()
    fig, axes = plt.subplots(
        num_segments * rows, cols, figsize=(cols * 0.6, num_segments * rows * 0.66), squeeze=False
    )
    for si, s in enumerate(segments):
        counts = sizes[s]
        for ri, attr in enumerate(counts.argsort(descending=True)[:rows].tolist()):
            members = (codes[:, s] == attr).nonzero().flatten()
            order = probs[members, s, attr].argsort(descending=True)[:cols]
            for ci in range(cols):
                ax = axes[si * rows + ri, ci]
                ax.axis("off")
                if ci < len(order) and counts[attr] > 0:
                    img = images[members[order[ci]]]
                    img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
                    ax.imshow(img.numpy(), cmap="gray" if img.ndim == 2 else None)
            axes[si * rows + ri, 0].set_title(
                f"seg {s}, attr {attr} (n={counts[attr].item()})", fontsize=6, loc="left", pad=1
            )
    fig.subplots_adjust(wspace=0.05, hspace=0.35, left=0.01, right=0.99, top=0.97, bottom=0.01)
    _save(fig, path, layout=False)


def write_plots(results: dict[str, Any], artifacts, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "accuracy_over_epochs.png", out / "time_per_epoch.png"]
    accuracy_over_epochs(results, paths[0])
    time_per_epoch(results, paths[1])
    if artifacts is not None and artifacts.music_probabilities is not None:
        paths += [out / "music_attribute_usage.png", out / "music_attribute_grid.png"]
        attribute_usage(artifacts.music_probabilities, paths[2])
        attribute_grid(artifacts.music_probabilities, artifacts.test_images, paths[3])
    return paths


# The two panels of a plot of every seed: the probe's key and how its axis is labelled.
PROBES = (("linear_top1", "linear"), ("knn_top1", "kNN (k = 20)"))


def _finished(runs: list[dict[str, Any]], study) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs that have a test accuracy, and the study's methods among them in the study's order."""
    finished = [r for r in runs if not r["row"].get("diverged") and r["row"].get("linear_top1") is not None]
    return finished, [m for m in study.methods if any(r["method"] == m for r in finished)]


def _label_probe(ax, probe: str, ticks: int, labels: list[str], **tick_options: Any) -> None:
    ax.set_xticks(range(ticks), labels, **tick_options)
    ax.set_xlim(-0.5, ticks - 0.5)
    ax.set_ylabel(f"test {probe} top-1 (%)")
    ax.grid(alpha=0.3, axis="y")


def _save_seeds(fig, path: Path, title: str, finished: list[dict[str, Any]]) -> bool:
    seeds = ", ".join(map(str, sorted({r["seed"] for r in finished})))
    fig.suptitle(title.format(seeds=seeds), fontsize=9)
    _save(fig, path)
    return True


@dataclass(frozen=True)
class ValuesPlot:
    """Every seed's test accuracy per method at each of the study's values, the values side by side, linear
    probe and kNN in two panels; a bar marks each method's mean at a value."""

    def draw(self, summary: dict[str, Any], study, path: Path, runs: list[dict[str, Any]]) -> bool:
        finished, methods = _finished(runs, study)
        if not finished:
            return False
        values = [v for v in study.values if any(r["value"] == v for r in finished)]
        width = 0.8 / len(methods)
        fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 1.2 * len(values) * len(methods) / 2 + 3), 3.8))
        for ax, (key, probe) in zip(axes, PROBES, strict=True):
            labelled: set[str] = set()
            for v, value in enumerate(values):
                for m, method in enumerate(methods):
                    scores = [
                        r["row"][key] for r in finished if r["value"] == value and r["method"] == method
                    ]
                    if not scores:
                        continue
                    x = v - 0.4 + (m + 0.5) * width
                    label = None if method in labelled else LABELS[method]
                    labelled.add(method)
                    ax.scatter([x] * len(scores), scores, color=COLORS[method], s=14, zorder=2, label=label)
                    mean = sum(scores) / len(scores)
                    ax.hlines(mean, x - width / 2.5, x + width / 2.5, color=COLORS[method], lw=2, zorder=3)
            _label_probe(ax, probe, len(values), [str(value) for value in values], fontsize=8)
        axes[0].legend(fontsize=7)
        return _save_seeds(fig, path, f"{study.name}: seeds {{seeds}}; a bar marks the mean", finished)


@dataclass(frozen=True)
class SeedsPlot:
    """Every seed's test accuracy per method, for a study of one value: linear probe and kNN side by side, a
    grey line joins the methods' runs of one seed (a pair), a bar marks each method's mean."""

    def draw(self, summary: dict[str, Any], study, path: Path, runs: list[dict[str, Any]]) -> bool:
        finished, methods = _finished(runs, study)
        if not finished:
            return False
        seeds = sorted({r["seed"] for r in finished})
        fig, axes = plt.subplots(1, 2, figsize=(max(7.5, 1.3 * len(methods) + 2.5), 3.6))
        for ax, (key, probe) in zip(axes, PROBES, strict=True):
            by = {(r["method"], r["seed"]): r["row"][key] for r in finished}
            for seed in seeds:
                pairs = [(x, by[m, seed]) for x, m in enumerate(methods) if (m, seed) in by]
                ax.plot(*zip(*pairs, strict=True), color="0.75", lw=1, zorder=1)
            for x, method in enumerate(methods):
                values = [by[method, seed] for seed in seeds if (method, seed) in by]
                ax.scatter([x] * len(values), values, color=COLORS[method], zorder=2, s=18)
                mean = sum(values) / len(values)
                ax.hlines(mean, x - 0.25, x + 0.25, color=COLORS[method], lw=2, zorder=3)
            labels = [LABELS[m] for m in methods]
            _label_probe(ax, probe, len(methods), labels, rotation=30 if len(methods) > 3 else 0)
        title = f"{study.name}: {study.values[0]}; seeds {{seeds}} (grey lines join a seed)"
        return _save_seeds(fig, path, title, finished)


@dataclass(frozen=True)
class SweepPlot:
    """Test linear top-1 of every method at each value of the study's variable, mean ± std over seeds."""

    xlabel: str
    log2: bool = False  # a log2 axis, each value a labelled tick
    title: str = "mean ± std over seeds"

    def draw(self, summary: dict[str, Any], study, path: Path, runs: list[dict[str, Any]]) -> bool:
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
        if self.log2:
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(study.values), [str(v) for v in study.values])
        else:
            ax.set_xticks(list(study.values))
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel("test linear top-1 (%)")
        ax.set_title(self.title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        _save(fig, path)
        return True


# MUSIC's segments are drawn in blue, so MUSIC's own k-means line and curves are too; the peers take the
# next colours of matplotlib's cycle.
CODES_COLORS = {"music": "tab:blue", "barlow_twins": "tab:orange", "vicreg": "tab:green"}


def nmi_histogram(runs: list[dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    c = summary["segment_dim"]
    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [s["nmi"] for run in runs for s in run["segments"]]
    random_init = [s["nmi"] for run in runs for s in run["random_init_segments"]]
    bins = [i / 50 for i in range(int(max(trained + random_init) * 50) + 2)]
    ax.hist(random_init, bins=bins, alpha=0.5, color="grey", label="segments, random-init MUSIC head")
    ax.hist(trained, bins=bins, alpha=0.8, color="tab:blue", label="segments, trained MUSIC")
    lines = [(f"raw_pixels_k{c}", "black", "k-means, raw pixels")]
    lines += [
        (f"{m}_features_k{c}", color, f"k-means, {NAMES[m].full} features")
        for m, color in CODES_COLORS.items()
    ]
    for key, color, label in lines:
        ax.axvline(summary["kmeans"][key]["nmi"], color=color, linestyle="--", label=f"{label} (k = {c})")
    ax.set_xlabel("NMI with the class labels (test split)")
    ax.set_ylabel("segments")
    ax.set_title(f"Each of MUSIC's segments as a clustering into {c}; seeds {summary['seeds']}", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def codes_attribute_grid(run: dict[str, Any], images, class_names, labels, path: Path) -> None:
    """Rows: a segment's largest clusters (attributes); columns: their most confident test images."""
    rows = [(g, a) for g in run["grid"] for a in g["attributes"]]
    columns = max(len(a["images"]) for _, a in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.8, len(rows) * 0.85))
    for r, (segment, attribute) in enumerate(rows):
        for col in range(columns):
            ax = axes[r][col]
            ax.axis("off")
            if col < len(attribute["images"]):
                index = attribute["images"][col]
                ax.imshow(images[index].squeeze(0), cmap="gray")
                ax.set_title(class_names[int(labels[index])][:7], fontsize=5, pad=1)
        axes[r][0].text(
            -0.2, 0.5, f"seg {segment['segment']} attr {attribute['attribute']}\n(n={attribute['size']})",
            transform=axes[r][0].transAxes, ha="right", va="center", fontsize=5,
        )  # fmt: skip
    fig.suptitle(f"Seed {run['seed']}: the {len(run['grid'])} segments with the highest NMI", fontsize=8)
    fig.tight_layout(rect=(0.08, 0, 1, 0.98))
    _save(fig, path, dpi=110, layout=False)


def precision_curves(summary: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in summary["retrieval"].items():
        method = next(m for m in CODES_COLORS if name.startswith(m))
        ks = [int(k.split("@")[1]) for k in result["precision_at"]]
        style = "-" if "codes" in name else ":" if "float32" in name else "--" if "pca" in name else "-."
        label = f"{result_label(name)} ({result['bytes']} B)"
        ax.plot(
            ks,
            list(result["precision_at"].values()),
            style,
            color=CODES_COLORS[method],
            marker=".",
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("precision@k (test queries, train database)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    _save(fig, path)


def codes_plots(out: Path, runs: list[dict[str, Any]], summary: dict[str, Any], data) -> None:
    nmi_histogram(runs, summary, out / "segment_nmi.png")
    precision_curves(summary, out / "precision_at_k.png")
    if data is None:
        from benchmarks.quality.data import load_dataset

        data = load_dataset("fashion_mnist")
    codes_attribute_grid(
        runs[0], data.test_images, data.class_names, data.test_labels, out / "attribute_grid.png"
    )
