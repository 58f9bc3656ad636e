"""The codes study's plots: per-segment NMI against k-means, images per attribute, precision@k curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.quality.data import load_dataset
from benchmarks.quality.names import NAMES, result_label
from benchmarks.quality.plots import plt

# MUSIC's segments are drawn in blue, so MUSIC's own k-means line and curves are too; the peers take the
# next colours of matplotlib's cycle.
COLORS = {"music": "tab:blue", "barlow_twins": "tab:orange", "vicreg": "tab:green"}


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
        (f"{m}_features_k{c}", color, f"k-means, {NAMES[m].full} features") for m, color in COLORS.items()
    ]
    for key, color, label in lines:
        ax.axvline(summary["kmeans"][key]["nmi"], color=color, linestyle="--", label=f"{label} (k = {c})")
    ax.set_xlabel("NMI with the class labels (test split)")
    ax.set_ylabel("segments")
    ax.set_title(f"Each of MUSIC's segments as a clustering into {c}; seeds {summary['seeds']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def attribute_grid(run: dict[str, Any], images, class_names, labels, path: Path) -> None:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def precision_curves(summary: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in summary["retrieval"].items():
        method = next(m for m in COLORS if name.startswith(m))
        ks = [int(k.split("@")[1]) for k in result["precision_at"]]
        style = "-" if "codes" in name else ":" if "float32" in name else "--" if "pca" in name else "-."
        label = f"{result_label(name)} ({result['bytes']} B)"
        ax.plot(
            ks, list(result["precision_at"].values()), style, color=COLORS[method], marker=".", label=label
        )
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("precision@k (test queries, train database)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_all(out: Path, runs: list[dict[str, Any]], summary: dict[str, Any], data) -> None:
    nmi_histogram(runs, summary, out / "segment_nmi.png")
    precision_curves(summary, out / "precision_at_k.png")
    if data is None:
        data = load_dataset("fashion_mnist")
    attribute_grid(runs[0], data.test_images, data.class_names, data.test_labels, out / "attribute_grid.png")
