"""The shape of one call: which of the package's files `MUSICLoss()(z_a, z_b)` passes."""

import sys
from pathlib import Path

import torch

import music_ssl
from music_ssl import MUSICLoss

PACKAGE = Path(music_ssl.__file__).resolve().parent


def files_visited(call) -> list[str]:
    """The package's files that ``call()`` enters, in order, one entry per visit: a call into a file of
    the package from another of its files (or from outside it, for the first), where the caller is the
    nearest frame of the package on the stack (torch's dispatcher frames between them do not count)."""
    visits: list[str] = []

    def package_file(frame) -> str | None:
        name = frame.f_code.co_filename
        path = Path(name)
        return str(path.resolve().relative_to(PACKAGE)) if name.startswith(str(PACKAGE)) else None

    def profile(frame, event, arg):
        if event != "call":
            return
        here = package_file(frame)
        if here is None:
            return
        caller = frame.f_back
        while caller is not None and package_file(caller) is None:
            caller = caller.f_back
        if caller is None or package_file(caller) != here:
            visits.append(here)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return visits


def test_one_loss_call_reads_top_to_bottom_through_five_files_each_once():
    loss_fn = MUSICLoss(segment_dim=8)
    z_a, z_b = (torch.randn(16, 64, requires_grad=True) for _ in range(2))
    loss_fn(z_a, z_b)  # the first call also imports lazily what it needs
    visits = files_visited(lambda: loss_fn(z_a, z_b))
    assert visits == ["loss.py", "checks.py", "implementations.py", "distributed.py", "fused.py"], visits


def test_the_terms_call_adds_only_the_output_diagnostics():
    loss_fn = MUSICLoss(segment_dim=8)
    z_a, z_b = (torch.randn(16, 64, requires_grad=True) for _ in range(2))
    loss_fn.terms(z_a, z_b)
    visits = files_visited(lambda: loss_fn.terms(z_a, z_b))
    assert visits == ["loss.py", "checks.py", "implementations.py", "distributed.py", "fused.py", "output.py"]
