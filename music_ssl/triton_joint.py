"""Triton kernel for the joint-entropy terms (GPU). Placeholder until the kernel lands."""

from __future__ import annotations

import torch


def unavailable_reason(device: torch.device) -> str:
    return "the Triton kernel is not implemented yet."


def is_available(device: torch.device) -> bool:
    return False


def triton_joint_entropies(*args, **kwargs):
    raise NotImplementedError("The Triton kernel is not implemented yet; use implementation='chunked'.")
