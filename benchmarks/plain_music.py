"""MUSIC as research code usually writes it: eager PyTorch, the joint and its masks as D x D tensors.

The baseline the fused implementations are measured against. It computes the same objective as
music_ssl's reference (up to the epsilon inside the logs) with autograd through every D x D tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12


def plain_music_loss(z_a: Tensor, z_b: Tensor, segment_dim: int = 32, temperature: float = 0.25) -> Tensor:
    n, d = z_a.shape
    s = d // segment_dim
    p_a = torch.softmax(z_a.float().view(n, s, segment_dim) / temperature, dim=-1).view(n, d)
    p_b = torch.softmax(z_b.float().view(n, s, segment_dim) / temperature, dim=-1).view(n, d)

    joint = p_a.T @ p_b / n
    block = torch.kron(
        torch.eye(s, device=z_a.device), torch.ones(segment_dim, segment_dim, device=z_a.device)
    )
    diag_mask = torch.eye(d, device=z_a.device)
    off_mask = 1.0 - block
    entropy = joint * torch.log(joint + EPS)
    loss_diag = (entropy * diag_mask).sum() / s
    loss_off = (entropy * off_mask).sum() / (s * (s - 1))
    agreement = (p_a * p_b).view(n, s, segment_dim).sum(dim=-1)
    loss_inv = -torch.log(agreement + EPS).mean()
    return loss_diag + loss_off + loss_inv
