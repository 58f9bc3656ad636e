"""Where the main run's time goes: augmentation, forward/backward, the kNN monitor, the evaluation.

    python -m benchmarks.quality.timing --threads 2 --steps 20

Times each part of one pretraining step of every method on the CPU profile, then one kNN monitor call
and one full evaluation (features of the 60k train and 10k test images, linear probe, kNN), and prints
seconds per part and what they add up to for one main run. Medians over steps, so a busy neighbour on
the same cores shows up as spread, not as a shifted total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import get_profile
from benchmarks.quality.data import load_dataset
from benchmarks.quality.evaluate import evaluate_profile, extract_features
from benchmarks.quality.ssl_methods import DEFAULT_LOSS_PARAMS, SSL_METHODS, build_loss
from benchmarks.quality.train import build_model, monitor_knn, monitor_split


def _clock(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _time_steps(method, model, data, profile, augment, gen, steps) -> dict[str, list[float]]:
    loss_fn = build_loss(method, DEFAULT_LOSS_PARAMS[method])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    parts: dict[str, list[float]] = {"augment": [], "forward": [], "loss": [], "backward_step": []}
    for i in range(steps + 2):
        batch = data.train_images[i * profile.batch_size : (i + 1) * profile.batch_size]
        t_aug, (x_a, x_b) = _clock(lambda batch=batch: (augment(batch, gen), augment(batch, gen)))
        t_fwd, (z_a, z_b) = _clock(lambda x_a=x_a, x_b=x_b: (model(x_a), model(x_b)))
        t_loss, loss = _clock(lambda z_a=z_a, z_b=z_b: loss_fn(z_a, z_b))
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t_bwd = time.perf_counter() - start
        if i >= 2:  # the first steps warm up the allocator
            for key, t in zip(parts, (t_aug, t_fwd, t_loss, t_bwd), strict=True):
                parts[key].append(t)
    return parts


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality.timing", description=__doc__)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--skip-evaluation", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile("cpu")
    data = load_dataset("fashion_mnist")
    augment = BatchAugment(profile.augment, *data.channel_stats())
    gen = torch.Generator().manual_seed(0)
    out: dict = {"threads": torch.get_num_threads(), "steps": args.steps, "per_step": {}}
    for method in SSL_METHODS:
        torch.manual_seed(0)
        model = build_model(profile, data.channels)
        parts = _time_steps(method, model, data, profile, augment, gen, args.steps)
        out["per_step"][method] = {k: round(statistics.median(v), 4) for k, v in parts.items()}
        totals = [sum(step) for step in zip(*parts.values(), strict=True)]
        out["per_step"][method]["spread_total"] = [round(min(totals), 4), round(max(totals), 4)]
        print(method, out["per_step"][method], flush=True)
    bank, queries = monitor_split(data, profile, 0)
    out["monitor_call"] = round(
        _clock(lambda: monitor_knn(model, data, augment, bank, queries, profile, "cpu"))[0], 2
    )
    print("monitor call", out["monitor_call"], flush=True)
    if not args.skip_evaluation:
        fb = profile.feature_batch_size
        t_feat, (train_f, test_f) = _clock(
            lambda: (
                extract_features(model.backbone, data.train_images, augment.plain, fb),
                extract_features(model.backbone, data.test_images, augment.plain, fb),
            )
        )
        t_eval, _ = _clock(lambda: evaluate_profile(train_f, test_f, data, profile))
        out["evaluation"] = {"features": round(t_feat, 2), "probe_and_knn": round(t_eval, 2)}
        print("evaluation", out["evaluation"], flush=True)
    steps_per_epoch = (profile.pretrain_subset or len(data.train_labels)) // profile.batch_size
    out["steps_per_epoch"] = steps_per_epoch
    out["epoch_seconds_estimate"] = {
        m: round(sum(v for k, v in s.items() if k != "spread_total") * steps_per_epoch, 1)
        for m, s in out["per_step"].items()
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
