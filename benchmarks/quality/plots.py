"""PNG plots of the main run (matplotlib, Agg backend, small files), and the colours every plot of the
main run and the studies gives the methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from benchmarks.quality.attributes import code_usage, entropy  # noqa: E402
from benchmarks.quality.names import NAMES  # noqa: E402
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
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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
