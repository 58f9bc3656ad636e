"""The main run: pretrain every method with the same protocol, then evaluate frozen features."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import Profile
from benchmarks.quality.data import ImageData
from benchmarks.quality.evaluate import evaluate_features, extract_features
from benchmarks.quality.methods import METHODS, loss_params
from benchmarks.quality.train import build_model, pretrain

BASELINES = ("raw_pixels", "random_init")
METRICS = ("linear_top1", "knn_top1")


@dataclass
class Artifacts:
    """What the plots need beyond results.json: MUSIC's test-set attribute probabilities."""

    music_probabilities: torch.Tensor | None = None  # (N_test, S, C)
    test_images: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def versions() -> dict[str, str]:
    import lightly
    import torchvision

    import music_ssl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightly": lightly.__version__,
        "music_ssl": music_ssl.__version__,
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
    }


def _features(backbone, data: ImageData, augment: BatchAugment, profile: Profile, device) -> tuple:
    fb = profile.feature_batch_size
    return (
        extract_features(backbone, data.train_images, augment.plain, fb, device),
        extract_features(backbone, data.test_images, augment.plain, fb, device),
    )


def _evaluate(train_f, test_f, data: ImageData, profile: Profile) -> dict[str, float]:
    return evaluate_features(
        train_f,
        data.train_labels,
        test_f,
        data.test_labels,
        data.num_classes,
        profile.knn_ks,
        profile.knn_temperature,
        profile.probe_weight_decay,
        profile.probe_max_iter,
    )


@torch.no_grad()
def music_attributes(
    model, data: ImageData, augment: BatchAugment, profile: Profile, segment_dim: int, device
):
    from music_ssl import segment_probabilities

    model.eval()
    probs = []
    for start in range(0, len(data.test_images), profile.feature_batch_size):
        x = augment.plain(data.test_images[start : start + profile.feature_batch_size].to(device))
        probs.append(segment_probabilities(model(x).float(), segment_dim).cpu())
    return torch.cat(probs)


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over seeds of every numeric entry; ``*_std`` beside accuracies when there are several seeds."""
    out: dict[str, Any] = {}
    for key, value in per_seed[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in per_seed]
            out[key] = round(statistics.fmean(values), 4)
            if len(values) > 1 and (key.endswith("top1") or key.startswith("knn_top1_k")):
                out[f"{key}_std"] = round(statistics.stdev(values), 4)
    return out


def run_benchmark(
    data: ImageData,
    profile: Profile,
    method_params: dict[str, dict[str, Any]],
    methods: tuple[str, ...] = METHODS,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    progress: bool = True,
    log=print,
) -> tuple[dict[str, Any], Artifacts]:
    """Every method in ``methods`` and both baselines, for every seed in ``profile.seeds``."""
    t0 = time.perf_counter()
    augment = BatchAugment(profile.augment, *data.channel_stats())
    artifacts = Artifacts(test_images=data.test_images)
    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in (*methods, *BASELINES)}
    histories: dict[str, list] = {}

    for seed in profile.seeds:
        start = time.perf_counter()
        raw_train = data.train_images.flatten(1).float().div(255).to(device)
        raw_test = data.test_images.flatten(1).float().div(255).to(device)
        per_seed["raw_pixels"].append(
            {**_evaluate(raw_train, raw_test, data, profile), "seconds": time.perf_counter() - start}
        )
        del raw_train, raw_test
        log(f"[seed {seed}] raw_pixels: {per_seed['raw_pixels'][-1]}")

        start = time.perf_counter()
        torch.manual_seed(seed)  # the very initial weights every method starts from
        model = build_model(profile, data.channels).to(device)
        result = _evaluate(*_features(model.backbone, data, augment, profile, device), data, profile)
        per_seed["random_init"].append({**result, "seconds": time.perf_counter() - start})
        log(f"[seed {seed}] random_init: {per_seed['random_init'][-1]}")

        for method in methods:
            params = method_params[method]
            trained = pretrain(
                method, params, data, profile, augment, seed, device, max_steps=max_steps, progress=progress
            )
            start = time.perf_counter()
            result = _evaluate(
                *_features(trained.model.backbone, data, augment, profile, device), data, profile
            )
            epochs_run = [h for h in trained.history if h["epoch"] > 0]
            entry = {
                **result,
                "seconds": trained.seconds,
                "seconds_per_epoch": trained.seconds / max(1, len(epochs_run)),
                "eval_seconds": time.perf_counter() - start,
                "final_loss": epochs_run[-1]["loss"] if epochs_run else None,
                "diverged": trained.diverged,
            }
            per_seed[method].append(entry)
            histories.setdefault(method, []).append(trained.history)
            log(f"[seed {seed}] {method}: { {k: v for k, v in entry.items()} }")
            if method == "music" and seed == profile.seeds[0]:
                segment_dim = int(loss_params("music", params)["segment_dim"])
                probs = music_attributes(trained.model, data, augment, profile, segment_dim, device)
                artifacts.music_probabilities = probs
                usage = (probs.argmax(-1).unsqueeze(-1) == torch.arange(probs.shape[-1])).float().mean(0)
                entropy = -torch.special.xlogy(usage, usage).sum(-1)
                artifacts.extra["music_attribute_entropy"] = entropy.tolist()  # of the argmax codes, nats

    results: dict[str, Any] = {"methods": {}}
    for name, rows in per_seed.items():
        summary = summarize(rows)
        if name in methods:
            summary["params"] = {
                "lr": method_params[name].get("lr", profile.lr),
                **loss_params(name, method_params[name]),
            }
            summary["history"] = histories[name][0]
            if len(rows) > 1:
                summary["per_seed"] = rows
            if name == "music" and "music_attribute_entropy" in artifacts.extra:
                summary["attribute_entropy_per_segment"] = [
                    round(v, 4) for v in artifacts.extra["music_attribute_entropy"]
                ]
        results["methods"][name] = summary
    results["targets"] = check_targets(results["methods"], methods)
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    return results, artifacts


def check_targets(res: dict[str, Any], methods: tuple[str, ...]) -> dict[str, Any]:
    """Issue 6's targets: MUSIC's linear probe >= both peers' and >= raw pixels + 3 points."""
    if "music" not in res:
        return {}
    music = res["music"]["linear_top1"]
    peers = {m: res[m]["linear_top1"] for m in methods if m != "music"}
    margin = music - res["raw_pixels"]["linear_top1"]
    beats_peers = all(music >= v for v in peers.values())
    return {
        "music_ge_peers": beats_peers,
        "music_minus_best_peer": round(music - max(peers.values()), 2) if peers else None,
        "music_minus_raw_pixels": round(margin, 2),
        "music_ge_raw_pixels_plus_3": margin >= 3.0,
        "met": beats_peers and margin >= 3.0,
    }
