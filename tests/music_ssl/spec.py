"""The definitions of docs/math.md spelled out with loops over segment pairs, in float64.

Deliberately independent of music_ssl.reference (no block views, no shared helpers), so that the
reference implementation itself is checked against the text of docs/math.md.
"""

import torch


def spec_terms(z_a, z_b, segment_dim, temperature=0.25):
    z_a, z_b = z_a.double(), z_b.double()
    n, d = z_a.shape
    s_count = d // segment_dim
    p_a = [
        torch.softmax(z_a[:, s * segment_dim : (s + 1) * segment_dim] / temperature, 1)
        for s in range(s_count)
    ]
    p_b = [
        torch.softmax(z_b[:, s * segment_dim : (s + 1) * segment_dim] / temperature, 1)
        for s in range(s_count)
    ]

    def plogp(x):
        return torch.where(
            x > 0, x * torch.log(torch.where(x > 0, x, torch.ones_like(x))), torch.zeros_like(x)
        )

    inv = 0.0
    for s in range(s_count):
        inv = inv - torch.log((p_a[s] * p_b[s]).sum(1)).sum()
    inv = inv / (n * s_count)
    diag = 0.0
    off = 0.0
    for s in range(s_count):
        for t in range(s_count):
            block = p_a[s].T @ p_b[t] / n
            if s == t:
                diag = diag + plogp(torch.diagonal(block)).sum()
            else:
                off = off + plogp(block).sum()
    diag = diag / s_count
    off = off / (s_count * (s_count - 1)) if s_count > 1 else torch.zeros((), dtype=torch.float64)
    return inv, diag, off


def spec_loss(z_a, z_b, segment_dim, temperature=0.25, diag_weight=1.0, off_weight=1.0, inv_weight=1.0):
    inv, diag, off = spec_terms(z_a, z_b, segment_dim, temperature)
    return diag_weight * diag + off_weight * off + inv_weight * inv


def spec_multi_view_terms(views, num_global, segment_dim, temperature=0.25):
    """docs/math.md's several views: every two-view term averaged over the pairs (i, j), i < j, that hold
    a global view (i < num_global)."""
    pairs = [(i, j) for i in range(len(views)) for j in range(len(views)) if i < j and i < num_global]
    terms = [spec_terms(views[i], views[j], segment_dim, temperature) for i, j in pairs]
    return tuple(sum(term[k] for term in terms) / len(pairs) for k in range(3))


def spec_multi_view_loss(
    views, num_global, segment_dim, temperature=0.25, diag_weight=1.0, off_weight=1.0, inv_weight=1.0
):
    inv, diag, off = spec_multi_view_terms(views, num_global, segment_dim, temperature)
    return diag_weight * diag + off_weight * off + inv_weight * inv
