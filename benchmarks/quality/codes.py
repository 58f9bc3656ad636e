"""The codes study: do MUSIC's segments partition images into semantic clusters, and are its codes good
for retrieval?

    python -m benchmarks.quality.study codes                 # the main run's settings, its seeds 0 and 1
    python -m benchmarks.quality.study codes --report-only   # rewrite table, summary and plots from run files
    python -m benchmarks.quality.study codes_long            # the long study's models, where they were kept

Per seed, every method is pretrained as in the main run and its model kept under --models, so a second
pass only evaluates; one JSON per seed goes to OUT/codes/runs/. ``codes_long`` never retrains a model of
the ``long`` study and names the seeds it lacks. What is measured (segments as clusterings against
k-means, codes against binarised features for retrieval): docs/codes.md.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.quality import code_metrics as metrics
from benchmarks.quality.augment import BatchAugment
from benchmarks.quality.config import RunSettings
from benchmarks.quality.evaluate import extract_features
from benchmarks.quality.models import save_model
from benchmarks.quality.run import pretrain_run
from benchmarks.quality.ssl_methods import SSL_METHODS, loss_params
from benchmarks.quality.study.codes_report import write_codes_report
from benchmarks.quality.study.store import resume, write_json
from benchmarks.quality.train import build_model
from music_ssl import (
    bits_per_attribute,
    cluster_sizes,
    code_agreement,
    segment_clusterings,
    segment_codes,
    segment_probabilities,
    soft_agreement,
)

# Where each codes study's models are kept (not committed).
DEFAULT_MODELS = {
    "codes": Path("results") / "codes" / "models",
    "codes_long": Path("results") / "models" / "long",
}
KS = (1, 5, 10, 20, 50, 100)
GRID_SEGMENTS, GRID_ATTRIBUTES, GRID_IMAGES = 3, 8, 8


def model_path(models: Path, method: str, seed: int) -> Path:
    return models / f"{method}__seed{seed}.pt"


def trained_model(method, params, data, profile, seed, models: Path, log) -> torch.nn.Module:
    """The model of `method` on `seed`: loaded from `models` if kept, else pretrained and kept."""
    segment_dim = int(loss_params(method, params).get("segment_dim", 32))
    path = model_path(models, method, seed)
    if path.is_file():
        model = build_model(profile, data.channels, segment_dim)
        model.load_state_dict(torch.load(path))
        return model
    log(f"[codes] pretraining {method} on seed {seed} ...")
    args = argparse.Namespace(device="cpu", max_steps=None)
    _, trained = pretrain_run(method, RunSettings(profile, params), data, seed, args)
    if trained.diverged:
        raise RuntimeError(f"{method} diverged on seed {seed}: {trained.divergence}")
    save_model(trained.model, path)
    return trained.model


@torch.no_grad()
def representations(model, images, augment, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and projections of un-augmented images."""
    model.eval()
    features = extract_features(model.backbone, images, augment.plain, batch_size)
    projections = torch.cat([model.projector(f) for f in features.split(batch_size)])
    return features, projections


def clustering_scores(clusters: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {"nmi": metrics.nmi(clusters, labels), "accuracy": metrics.cluster_accuracy(clusters, labels)}


def segment_scores(codes: torch.Tensor, labels: torch.Tensor, segment_dim: int) -> list[dict[str, float]]:
    return [
        {**clustering_scores(column, labels), "clusters_used": int(column.unique().numel())}
        for column in segment_clusterings(codes, segment_dim)
    ]


def attribute_grid(codes, probabilities, scores) -> list[dict[str, Any]]:
    """For the best segments by NMI: their largest clusters, each with its most confident test images."""
    best = sorted(range(len(scores)), key=lambda s: -scores[s]["nmi"])[:GRID_SEGMENTS]
    all_sizes = cluster_sizes(codes, probabilities.shape[-1])
    grid = []
    for segment in best:
        column, confidence = codes[:, segment], probabilities[:, segment].max(-1).values
        sizes = all_sizes[segment]
        rows = []
        used = [a for a in sizes.argsort(descending=True).tolist() if sizes[a] > 0]
        for attribute in used[:GRID_ATTRIBUTES]:
            members = (column == attribute).nonzero().flatten()
            chosen = members[confidence[members].argsort(descending=True)[:GRID_IMAGES]]
            rows.append({"attribute": attribute, "size": int(sizes[attribute]), "images": chosen.tolist()})
        grid.append({"segment": segment, "nmi": scores[segment]["nmi"], "attributes": rows})
    return grid


def one_seed(seed: int, data, profile, params, models: Path, queries: int, log) -> dict[str, Any]:
    augment = BatchAugment(profile.augment, *data.channel_stats())
    fb = profile.feature_batch_size
    music = loss_params("music", params["music"])
    segment_dim, temperature = int(music["segment_dim"]), float(music.get("temperature", 1.0))
    reps = {}
    for method in SSL_METHODS:
        model = trained_model(method, params[method], data, profile, seed, models, log)
        reps[method] = {
            split: representations(model, images, augment, fb)
            for split, images in (("train", data.train_images), ("test", data.test_images))
        }
    torch.manual_seed(seed)  # the initial weights every method started from
    random_model = build_model(profile, data.channels, segment_dim)
    random_test = representations(random_model, data.test_images, augment, fb)

    labels = data.test_labels
    start = time.perf_counter()
    music_test_z = reps["music"]["test"][1]
    codes = segment_codes(music_test_z, segment_dim)
    probabilities = segment_probabilities(music_test_z, segment_dim, temperature)
    segments = segment_scores(codes, labels, segment_dim)
    random_segments = segment_scores(segment_codes(random_test[1], segment_dim), labels, segment_dim)
    baselines: dict[str, dict[str, float]] = {}
    pixels = data.test_images.flatten(1).float().div(255)
    for k in (segment_dim, 10):
        baselines[f"raw_pixels_k{k}"] = clustering_scores(metrics.kmeans(pixels, k, seed), labels)
        for method in SSL_METHODS:
            for which, tensor in zip(("features", "projections"), reps[method]["test"], strict=True):
                clusters = metrics.kmeans(tensor, k, seed)
                baselines[f"{method}_{which}_k{k}"] = clustering_scores(clusters, labels)
    log(f"[codes] seed {seed}: clusterings in {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    retrieval = retrieval_scores(reps, data, segment_dim, temperature, seed, queries)
    log(f"[codes] seed {seed}: retrieval in {time.perf_counter() - start:.0f} s")
    return {
        "seed": seed,
        "segment_dim": segment_dim,
        "num_segments": codes.shape[1],
        "segments": segments,
        "random_init_segments": random_segments,
        "kmeans": baselines,
        "retrieval": retrieval,
        "grid": attribute_grid(codes, probabilities, segments),
    }


def retrieval_scores(reps, data, segment_dim, temperature, seed, num_queries) -> dict[str, dict[str, Any]]:
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randperm(len(data.test_labels), generator=generator)[:num_queries]
    query_labels, database_labels = data.test_labels[queries], data.train_labels
    z_db, z_q = reps["music"]["train"][1], reps["music"]["test"][1][queries]
    codes_db, codes_q = segment_codes(z_db, segment_dim), segment_codes(z_q, segment_dim)
    p_db, p_q = (segment_probabilities(z, segment_dim, temperature) for z in (z_db, z_q))
    num_segments = codes_db.shape[1]
    bits = num_segments * bits_per_attribute(segment_dim)
    code_bytes = -(-bits // 8)
    run = functools.partial(
        metrics.retrieval, query_labels=query_labels, database_labels=database_labels, ks=KS
    )
    out = {
        "music_codes": {
            "bytes": code_bytes,
            **run(lambda i: code_agreement(codes_q[i], codes_db, segment_dim), integer_scores=True),
        },
        "music_codes_soft": {
            "bytes": 4 * p_db[0].numel(),
            **run(lambda i: soft_agreement(p_q[i], p_db), integer_scores=False),
        },
    }
    for method in SSL_METHODS:
        f_db, f_q = reps[method]["train"][0], reps[method]["test"][0][queries]
        for name, (b_db, b_q) in (
            ("random_projection", metrics.random_projection_bits(f_db, f_q, bits, seed)),
            ("pca", metrics.pca_bits(f_db, f_q, bits)),
        ):
            scores = run(
                lambda i, b_q=b_q, b_db=b_db: metrics.hamming_similarity(b_q[i], b_db), integer_scores=True
            )
            out[f"{method}_{name}_bits"] = {"bytes": -(-b_db.shape[1] // 8), **scores}
        out[f"{method}_float32"] = {
            "bytes": 4 * f_db.shape[1],
            **run(
                lambda i, f_q=f_q, f_db=f_db: metrics.cosine_similarity(f_q[i], f_db), integer_scores=False
            ),
        }
    return {"queries": num_queries, "database": len(database_labels), "bits": bits, "results": out}


def kept_seeds(models: Path, seeds: tuple[int, ...], log) -> tuple[int, ...]:
    """The seeds whose three models were kept; a seed without them would need retraining, which this study
    leaves to the study that trained them."""
    kept, missing = [], []
    for seed in seeds:
        lacking = [m for m in SSL_METHODS if not model_path(models, m, seed).is_file()]
        (missing if lacking else kept).append(seed)
    if missing:
        log(
            f"[codes] no kept models under {models} for seeds {missing} (their runs were not trained "
            f"with --save-models; retraining one takes 25-75 min); evaluating seeds {kept}"
        )
    if not kept:
        raise FileNotFoundError(
            f"no seed has all three models under {models}: run "
            "python -m benchmarks.quality.study long --save-models results/models first"
        )
    return tuple(kept)


def run_codes(
    study, data, profile, params, out: Path, args, log=print, kept_only: bool = False
) -> dict[str, Any]:
    """Every seed of the codes study at the settings of the study's value: one run file per seed, skipped
    when it exists; models loaded from ``--models`` where kept, else pretrained and kept (never with
    ``kept_only``)."""
    folder = out / study.name
    models = args.models or DEFAULT_MODELS[study.name]
    params = {m: params[m] for m in SSL_METHODS}
    profile = study.settings(study.values[0], profile, params).profile
    seeds = tuple(args.seeds or study.seeds)
    if kept_only:
        seeds = kept_seeds(models, seeds, log)
    settings = {
        "profile": profile.to_dict(),
        "params": params,
        "queries": args.queries,
        "dataset": args.dataset,
        "data_limit": args.data_limit,
    }
    for seed in seeds:
        path = folder / "runs" / f"seed{seed}.json"
        if resume(path, settings):
            log(f"[codes] seed {seed}: done before ({path})")
            continue
        start = time.perf_counter()
        record = one_seed(seed, data, profile, params, models, args.queries, log)
        write_json(path, {**record, "seconds": round(time.perf_counter() - start, 1), "settings": settings})
    summary = write_codes_report(study, folder, data=data)
    log((folder / "table.md").read_text())
    return summary
