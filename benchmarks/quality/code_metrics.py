"""Metrics of the codes study: clusterings against labels, k-means baselines, binary codes and retrieval.

Clusterings: NMI (arithmetic normalisation, scikit-learn's default) and cluster accuracy, the share of
samples whose cluster is matched to their class by the best one-to-one matching of clusters to classes
(Hungarian method; clusters left unmatched count as errors). Retrieval: every query ranks the whole
database by a similarity; ties are broken by database order, so a coarse similarity (few distinct
values) gets no help from the tie-break. precision@k is the share of the top k with the query's label;
AP@k averages precision@i over the ranks i <= k that hold a relevant item, divided by their number (0
when none), and mAP@k is its mean over queries, as hashing papers report it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def nmi(clusters: Tensor, labels: Tensor) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(labels.numpy(), clusters.numpy()))


def cluster_accuracy(clusters: Tensor, labels: Tensor) -> float:
    from scipy.optimize import linear_sum_assignment

    num_clusters, num_classes = int(clusters.max()) + 1, int(labels.max()) + 1
    counts = torch.zeros(num_clusters, num_classes, dtype=torch.long)
    counts.index_put_(
        (clusters.long(), labels.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True
    )
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return float(counts[rows, cols].sum()) / len(labels)


def kmeans(features: Tensor, k: int, seed: int) -> Tensor:
    """k-means clusters of the rows (scikit-learn, k-means++ with 3 restarts)."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return torch.from_numpy(model.fit_predict(features.double().numpy()).astype(np.int64))


def random_projection_bits(database: Tensor, queries: Tensor, bits: int, seed: int) -> tuple[Tensor, Tensor]:
    """Signs of `bits` Gaussian random projections of the centred features (LSH for cosine similarity)."""
    generator = torch.Generator().manual_seed(seed)
    planes = torch.randn(database.shape[1], bits, generator=generator, dtype=torch.float64)
    mean = database.double().mean(0)
    return ((database.double() - mean) @ planes > 0), ((queries.double() - mean) @ planes > 0)


def pca_bits(database: Tensor, queries: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Signs of the projections on the database's top `bits` principal directions (at most its width)."""
    mean = database.double().mean(0)
    centred = database.double() - mean
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)
    top = directions[: min(bits, directions.shape[0])].T
    return (centred @ top > 0), ((queries.double() - mean) @ top > 0)


def hamming_similarity(queries: Tensor, database: Tensor) -> Tensor:
    """Bits that agree, for boolean codes (Q, B) and (M, B), as one matrix product of +-1 vectors."""
    q, d = (x.float() * 2 - 1 for x in (queries, database))
    return (q @ d.T + q.shape[1]) / 2


def cosine_similarity(queries: Tensor, database: Tensor) -> Tensor:
    q = torch.nn.functional.normalize(queries.float(), dim=1)
    return q @ torch.nn.functional.normalize(database.float(), dim=1).T


def retrieval(
    similarity: Callable[[Tensor], Tensor],
    query_labels: Tensor,
    database_labels: Tensor,
    integer_scores: bool,
    ks: tuple[int, ...] = (1, 10, 100),
    block: int = 250,
) -> dict[str, float]:
    """precision@k for every k in `ks`, mAP@max(ks) and the time per query of ranking the database.

    `similarity(indices)` returns the (len(indices), M) similarities of those queries to the database;
    `integer_scores` says they are whole numbers (agreeing segments or bits), whose many ties go to the
    earlier database item.
    """
    depth = max(ks)
    order = torch.arange(database_labels.shape[0], dtype=torch.float64)
    tie_break = order / (2 * len(order)) if integer_scores else torch.zeros_like(order)  # < 0.5
    hits_at = []
    seconds = 0.0
    for start in range(0, len(query_labels), block):
        indices = torch.arange(start, min(start + block, len(query_labels)))
        begin = time.perf_counter()
        scores = similarity(indices).double()
        top = torch.topk(scores - tie_break, depth, dim=1).indices
        seconds += time.perf_counter() - begin
        hits_at.append(database_labels[top] == query_labels[indices, None])
    hits = torch.cat(hits_at).double()
    out = {f"precision@{k}": float(hits[:, :k].mean()) for k in ks}
    ranks = torch.arange(1, depth + 1, dtype=torch.float64)
    precision_at_i = hits.cumsum(1) / ranks
    relevant = hits.sum(1)
    average_precision = (precision_at_i * hits).sum(1) / relevant.clamp_min(1)
    out[f"mAP@{depth}"] = float(average_precision.mean())
    out["ms_per_query"] = 1e3 * seconds / len(query_labels)
    return out
