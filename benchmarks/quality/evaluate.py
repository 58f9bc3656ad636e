"""Frozen-feature evaluation: a linear probe and a cosine kNN classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from benchmarks.quality.config import Profile
    from benchmarks.quality.data import ImageData


@torch.no_grad()
def extract_features(
    backbone: nn.Module, images: torch.Tensor, normalize, batch_size: int = 1000, device="cpu"
) -> torch.Tensor:
    """Backbone features of un-augmented ``uint8`` images, as a float32 tensor on ``device``."""
    was_training = backbone.training
    backbone.eval()
    feats = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size].to(device, non_blocking=True))
        with torch.autocast(
            device_type=torch.device(device).type, enabled=torch.device(device).type == "cuda"
        ):
            feats.append(backbone(x).float())
    backbone.train(was_training)
    return torch.cat(feats)


def check_finite(**features: torch.Tensor) -> None:
    """Refuse features holding NaN or infinity: a diverged backbone has no accuracy to measure."""
    for name, x in features.items():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(
                f"{name} holds {bad} non-finite values (NaN or infinity) out of {x.numel()}; "
                "the probes accept finite features only (was the backbone trained to divergence?)"
            )


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-4,
    max_iter: int = 300,
) -> float:
    """Multinomial logistic regression on standardized features, fit by full-batch L-BFGS; top-1 in %.

    The same convex problem as scikit-learn's ``LogisticRegression(solver="lbfgs")`` on
    ``StandardScaler`` features, solved in torch so it runs on the GPU where there is one.
    """
    check_finite(train_x=train_x, test_x=test_x)
    train_x, test_x = train_x.float(), test_x.float()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_y, test_y = train_y.to(train_x.device), test_y.to(test_x.device)
    weight = torch.zeros(train_x.shape[1], num_classes, device=train_x.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=train_x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
    )

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = (test_x @ weight + bias).argmax(1)
    return 100.0 * (pred == test_y).float().mean().item()


@torch.no_grad()
def knn_classify(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    ks: tuple[int, ...] = (20, 200),
    temperature: float = 0.07,
    chunk: int = 500,
) -> dict[int, float]:
    """Cosine-similarity kNN with similarity-weighted votes ``exp(sim / T)`` (Wu et al., 2018); top-1 in %."""
    check_finite(train_x=train_x, test_x=test_x)
    train_x, test_x = F.normalize(train_x.float(), dim=1), F.normalize(test_x.float(), dim=1)
    train_y, test_y = train_y.to(train_x.device), test_y.to(test_x.device)
    kmax = min(max(ks), len(train_x))
    correct = dict.fromkeys(ks, 0)
    for start in range(0, len(test_x), chunk):
        sim = test_x[start : start + chunk] @ train_x.T
        top_sim, top_idx = sim.topk(kmax, dim=1)
        top_labels = train_y[top_idx]
        weights = (top_sim / temperature).exp()
        for k in ks:
            kk = min(k, kmax)
            votes = torch.zeros(len(sim), num_classes, device=sim.device)
            votes.scatter_add_(1, top_labels[:, :kk], weights[:, :kk])
            correct[k] += (votes.argmax(1) == test_y[start : start + chunk]).sum().item()
    return {k: 100.0 * c / len(test_x) for k, c in correct.items()}


def evaluate_profile(
    train_f: torch.Tensor, test_f: torch.Tensor, data: ImageData, profile: Profile
) -> dict[str, float]:
    """Linear probe and kNN of ``data``'s test images on features of its train images, with the profile's
    probe and kNN settings. Returns ``linear_top1``, ``knn_top1`` (the first k) and ``knn_top1_k{k}`` for
    every k, in %."""
    labelled = (train_f, data.train_labels, test_f, data.test_labels, data.num_classes)
    ks = profile.knn_ks
    result = {"linear_top1": linear_probe(*labelled, profile.probe_weight_decay, profile.probe_max_iter)}
    knn = knn_classify(*labelled, ks, profile.knn_temperature)
    return {**result, "knn_top1": knn[ks[0]], **{f"knn_top1_k{k}": knn[k] for k in ks}}
