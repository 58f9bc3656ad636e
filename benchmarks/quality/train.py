"""Self-supervised pretraining: one loop for every method, only the loss differs (the supervised
ceiling's loss also reads the batch's labels)."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import Profile
from benchmarks.quality.data import ImageData
from benchmarks.quality.evaluate import extract_features, knn_classify
from benchmarks.quality.models import SSLModel, build_backbone
from benchmarks.quality.ssl_methods import (
    SUPERVISED,
    build_loss,
    loss_params,
    multi_view_loss,
    projector_output_dim,
)


@dataclass
class TrainResult:
    model: SSLModel
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # pretraining wall time, monitor evaluations excluded
    # The same span in CPU time of this process (all its threads): unlike the wall time, it does not grow
    # when another process shares the machine.
    cpu_seconds: float = 0.0
    # Where training stopped on a non-finite value: epoch, step (1-based, over the whole run), the last
    # finite loss and the reason; None when it ran to the end.
    divergence: dict[str, Any] | None = None
    # Peak memory of one training step above what the model and the batch already hold (`step_memory`).
    peak_step_bytes: int | None = None

    @property
    def diverged(self) -> bool:
        return self.divergence is not None


def weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def build_model(
    profile: Profile, in_channels: int, segment_dim: int = 32, output_dim: int | None = None
) -> SSLModel:
    """Backbone + the shared projector (MUSIC's head: Linear-BN-ReLU blocks, then Linear without bias).

    Every method gets this same module; ``segment_dim`` only tells MUSIC's head how to read its output, and
    ``output_dim`` (default: the profile's) is the width of a method whose own head sets one.
    """
    from music_ssl import MUSICProjectionHead

    backbone = build_backbone(profile.backbone, in_channels)
    projector = MUSICProjectionHead(
        input_dim=backbone.out_dim,
        hidden_dim=profile.projector_hidden_dim,
        output_dim=profile.projector_output_dim if output_dim is None else output_dim,
        num_layers=profile.projector_num_layers,
        segment_dim=segment_dim,
    )
    return SSLModel(backbone, projector)


OPTIMIZERS = ("sgd", "lars")
# LARS as the Barlow Twins and VICReg papers train with it: weight decay of that order, biases and
# normalization parameters left out of both the decay and the layer-wise scaling.
LARS_WEIGHT_DECAY = 1e-6


def build_optimizer(
    model: torch.nn.Module, params: dict[str, Any], profile: Profile
) -> torch.optim.Optimizer:
    """SGD with momentum (the default) or LARS, from ``params``' training keys.

    ``params["lr"]`` is the learning rate per 256 images (scaled linearly with the batch size);
    ``params["optimizer"]`` is ``"sgd"`` or ``"lars"``; ``params["weight_decay"]`` overrides the
    profile's (SGD) or ``LARS_WEIGHT_DECAY`` (LARS).
    """
    name = params.get("optimizer", "sgd")
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}; expected one of {OPTIMIZERS}")
    lr = float(params.get("lr", profile.lr)) * profile.batch_size / 256
    if name == "sgd":
        weight_decay = float(params.get("weight_decay", profile.weight_decay))
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=profile.momentum, weight_decay=weight_decay
        )
    from lightly.utils.lars import LARS

    weight_decay = float(params.get("weight_decay", LARS_WEIGHT_DECAY))
    matrices = [p for p in model.parameters() if p.ndim > 1]
    vectors = [p for p in model.parameters() if p.ndim <= 1]
    # A group with no weight decay is also left out of LARS' layer-wise scaling.
    groups = [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    return LARS(groups, lr=lr, momentum=profile.momentum)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain_indices(num_train: int, subset: int | None, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num_train, generator=g)
    return perm if subset is None else perm[: min(subset, num_train)]


def monitor_split(data: ImageData, profile: Profile, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    bank = torch.randperm(len(data.train_labels), generator=g)[: profile.monitor_bank]
    queries = torch.randperm(len(data.test_labels), generator=g)[: profile.monitor_queries]
    return bank, queries


@torch.no_grad()
def monitor_knn(model, data, augment, bank, queries, profile, device) -> float:
    """kNN (first k) top-1 on a small bank/query pair: draws accuracy over epochs, never chooses anything."""
    fb = extract_features(
        model.backbone, data.train_images[bank], augment.plain, profile.feature_batch_size, device
    )
    fq = extract_features(
        model.backbone, data.test_images[queries], augment.plain, profile.feature_batch_size, device
    )
    acc = knn_classify(
        fb,
        data.train_labels[bank],
        fq,
        data.test_labels[queries],
        data.num_classes,
        (profile.knn_ks[0],),
        profile.knn_temperature,
    )
    return acc[profile.knn_ks[0]]


def embed_views(
    model: torch.nn.Module,
    batch: torch.Tensor,
    augment: BatchAugment,
    generator: torch.Generator,
    profile: Profile,
    amp: bool = False,
    channels_last: bool = False,
) -> list[torch.Tensor]:
    """The float32 projections of one batch's views: the two global views, then the profile's
    ``local_views`` local ones (``local_size`` pixels a side, ``local_crop_scale`` of the image area).

    Each global view is a forward of its own; the local views, all of one size, go through the model in
    one forward of ``local_views`` x N images (as DINO and SwAV group their crops by resolution), so
    BatchNorm normalizes them together. Without local views this is the two-view step as it always was:
    the same random draws in the same order, the same forwards.
    """

    def project(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
            return model(x)

    views = [project(augment(batch, generator)), project(augment(batch, generator))]
    if profile.local_views:
        local = augment.local(
            batch, profile.local_views, profile.local_size, profile.local_crop_scale, generator
        )
        views += project(local).chunk(profile.local_views)
    return [z.float() for z in views]


def pretrain(
    method: str,
    params: dict[str, Any],
    data: ImageData,
    profile: Profile,
    augment: BatchAugment,
    seed: int = 0,
    device: str | torch.device = "cpu",
    epochs: int | None = None,
    monitor: bool = True,
    max_steps: int | None = None,
    progress: bool = True,
    stop_epoch: int | None = None,
) -> TrainResult:
    """Pretrain ``profile.backbone`` with ``method``'s loss; ``params`` holds ``lr`` and the loss options
    (and, optionally, ``optimizer`` and ``weight_decay``: see ``build_optimizer``).

    The seed fixes the weight initialization, the pretraining subset, the batch order and the
    augmentations, so every method sees the same images in the same order from the same initial weights.
    ``stop_epoch`` ends training after that epoch on the schedule of the full ``epochs`` (a screening run
    for divergence, whose early steps are exactly those of a full run).
    """
    device = torch.device(device)
    epochs = profile.epochs if epochs is None else epochs
    lparams = loss_params(method, params)
    torch.manual_seed(seed)
    output_dim = projector_output_dim(method, params, profile.projector_output_dim, data.num_classes)
    # A method without segments reads the head's output whole: one segment of its width.
    segment_dim = int(lparams.get("segment_dim", output_dim))
    model = build_model(profile, data.channels, segment_dim, output_dim).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if profile.local_views < 0 or profile.local_size < 1:
        raise ValueError(
            f"local_views={profile.local_views}, local_size={profile.local_size}: expected a number of "
            "local views >= 0 and a side of at least one pixel"
        )
    loss_fn = build_loss(method, lparams)
    if profile.local_views:
        loss_fn = multi_view_loss(method, loss_fn)
    loss_fn = loss_fn.to(device)
    optimizer = build_optimizer(model, params, profile)
    indices = pretrain_indices(len(data.train_labels), profile.pretrain_subset, seed)
    images = data.train_images[indices].to(device)
    # The labels reach the supervised ceiling's loss only; every self-supervised loss sees images alone.
    labels = data.train_labels[indices].to(device) if method == SUPERVISED else None
    steps_per_epoch = len(images) // profile.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size={profile.batch_size} exceeds the {len(images)} pretraining images")
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    warmup = int(profile.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))
    order = torch.Generator().manual_seed(seed + 2)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 3)
    bank, queries = monitor_split(data, profile, seed)
    monitor_epochs = set(range(profile.monitor_every, epochs + 1, profile.monitor_every))
    result = TrainResult(model=model)
    if monitor:
        result.history.append(
            {
                "epoch": 0,
                "loss": None,
                "seconds": 0.0,
                "knn_monitor": monitor_knn(model, data, augment, bank, queries, profile, device),
            }
        )
    amp = profile.mixed_precision and device.type == "cuda"
    step = 0
    last_finite: float | None = None
    for epoch in range(1, min(epochs, stop_epoch or epochs) + 1):
        model.train()
        start, cpu_start = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(images), generator=order).to(device)
        losses = []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{method} epoch {epoch}/{epochs}",
            leave=False,
            disable=not progress,
            mininterval=2.0,
            dynamic_ncols=True,
        )
        for i in bar:
            if step >= total:
                break
            rows = perm[i * profile.batch_size : (i + 1) * profile.batch_size]
            views = embed_views(model, images[rows], augment, aug_gen, profile, amp, device.type == "cuda")
            loss = loss_fn(*views) if labels is None else loss_fn(*views, labels=labels[rows])
            # One host sync per step; the step with a non-finite loss is never applied, so the model
            # keeps its last finite weights.
            if not torch.isfinite(loss):
                result.divergence = divergence_event(epoch, step + 1, last_finite, "non-finite loss")
                break
            last_finite = loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(last_finite)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{last_finite:.4g}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result.seconds += seconds
        result.cpu_seconds += time.process_time() - cpu_start
        mean_loss = sum(losses) / len(losses) if losses else None
        entry: dict[str, Any] = {"epoch": epoch, "loss": mean_loss, "seconds": seconds}
        if result.divergence is None and not weights_finite(model):
            # A finite loss whose gradient overflowed: the weights are lost, the loss would follow.
            result.divergence = divergence_event(epoch, step, last_finite, "non-finite weights")
        if result.divergence is not None:
            entry["knn_monitor"] = None
            result.history.append(entry)
            break
        if monitor and (epoch in monitor_epochs or step >= total):
            entry["knn_monitor"] = monitor_knn(model, data, augment, bank, queries, profile, device)
        result.history.append(entry)
        if step >= total:
            break
    if result.divergence is None:
        first = None if labels is None else labels[: profile.batch_size]
        batch = images[: profile.batch_size]
        result.peak_step_bytes = step_memory(model, loss_fn, batch, augment, device, profile, first)
    model.eval()
    return result


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's native library writes start/stop lines (and, without a GPU, a failed device count) to
    file descriptor 2 on every use; a benchmark's log has no use for them. Python's own errors still
    reach the log: an exception propagates and is printed after the descriptor is restored."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def step_memory(
    model,
    loss_fn,
    batch: torch.Tensor,
    augment: BatchAugment,
    device: torch.device,
    profile: Profile,
    labels: torch.Tensor | None = None,
) -> int:
    """Peak memory of one training step (augmentations, forward, loss, backward) above what was allocated
    before it, in bytes; the gradients are dropped and no weight changes. The step makes the views the
    ``profile`` trains with (`embed_views`: its local views, if any, beside the two global ones).

    On CUDA the allocator's peak; on the CPU, which keeps no such count, the peak of the running sum of
    torch's allocations and frees recorded by its profiler over the step.

    The step runs on copies of the model and the loss, inside a fork of torch's random state: the trained
    model's BatchNorm statistics, a loss's own state (W-MSE's running whitening) and the random numbers the
    evaluation draws next are those of the run without the measurement.
    """
    model, loss_fn = copy.deepcopy(model), copy.deepcopy(loss_fn)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        generator = torch.Generator(device=device).manual_seed(0)

        def step() -> None:
            views = embed_views(model, batch, augment, generator, profile)
            (loss_fn(*views) if labels is None else loss_fn(*views, labels=labels)).backward()

        model.train()
        return _peak_bytes(step, device)


def _peak_bytes(step, device: torch.device) -> int:
    """The peak memory ``step()`` allocates above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as record

        with (
            _native_stderr_silenced(),
            record(activities=[ProfilerActivity.CPU], profile_memory=True) as recorded,
        ):
            step()
        events = [e for e in recorded.profiler.kineto_results.events() if e.name() == "[memory]"]
        held = peak = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            held += event.nbytes()
            peak = max(peak, held)
    return int(peak)


def divergence_event(epoch: int, step: int | None, last_finite: float | None, reason: str) -> dict[str, Any]:
    return {"epoch": epoch, "step": step, "last_finite_loss": last_finite, "reason": reason}
