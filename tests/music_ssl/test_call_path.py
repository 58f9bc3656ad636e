"""The shape of one call: which of the package's files `MUSICLoss()(z_a, z_b)` passes."""

import sys
from pathlib import Path

import pytest
import torch

import music_ssl
from music_ssl import MUSICLoss

PACKAGE = Path(music_ssl.__file__).resolve().parent


def files_visited(call) -> list[str]:
    """The package's files that ``call()`` enters, in order, one entry per visit: a call into a file of
    the package from another of its files (or from outside it, for the first), the caller being the
    nearest frame of the package on the stack; or from the same file through code outside the package
    (torch's dispatcher running an operator whose caller is in the same file re-enters that file)."""
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
        through_outside = False
        while caller is not None and package_file(caller) is None:
            caller, through_outside = caller.f_back, True
        if caller is None or package_file(caller) != here or through_outside:
            visits.append(here)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return visits


def calls_between_files(call) -> tuple[list[str], set[tuple[str, str]]]:
    """The package's files ``call()`` enters, in the order of their first visit, and the (caller, callee)
    pairs of files (the caller being the nearest frame of the package on the stack)."""
    order: list[str] = []
    edges: set[tuple[str, str]] = set()

    def package_file(frame) -> str | None:
        name = frame.f_code.co_filename
        return str(Path(name).resolve().relative_to(PACKAGE)) if name.startswith(str(PACKAGE)) else None

    def profile(frame, event, arg):
        here = package_file(frame) if event == "call" else None
        if here is None:
            return
        caller = frame.f_back
        while caller is not None and package_file(caller) is None:
            caller = caller.f_back
        if here not in order:
            order.append(here)
        if caller is not None and package_file(caller) != here:
            edges.add((package_file(caller), here))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return order, edges


def _downward_only(edges: set[tuple[str, str]]) -> bool:
    """Whether no file is re-entered through a file it called: the graph of calls between files has no
    cycle."""
    callees: dict[str, set[str]] = {}
    for caller, callee in edges:
        callees.setdefault(caller, set()).add(callee)

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in callees.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    return not any(reaches(file, file, {file}) for file in callees)


CORE = ["loss.py", "checks.py", "registry.py"]
# A fused implementation: the registry entry's call, which flattens the options into the operator's
# arguments, then the operator's body below it in the same file (entered through torch's dispatcher, so
# counted as a second visit), the distributed policy, the segments' math, and the kernel.
FUSED = ["fused.py", "distributed.py", "segments.py"]
THROUGH_THE_DISPATCHER = ["fused.py", "fused.py", "distributed.py", "segments.py"]
# Each call's files, in the order of their first visit: the checks, the registry's choice, the
# implementation, the distributed policy (the batch), and the math below every implementation.
PATHS = {
    "auto": [*CORE, *FUSED, "chunked.py"],
    "chunked": [*CORE, *FUSED, "chunked.py"],
    "reference": [*CORE, "reference.py", "distributed.py", "segments.py"],
}
# The same, one entry per visit (`files_visited`).
VISITS = {
    "auto": [*CORE, *THROUGH_THE_DISPATCHER, "chunked.py"],
    "chunked": [*CORE, *THROUGH_THE_DISPATCHER, "chunked.py"],
    "reference": PATHS["reference"],
}


@pytest.mark.parametrize("implementation", sorted(PATHS))
@pytest.mark.parametrize("num_views", [2, 4])
def test_one_loss_call_enters_each_file_once_top_to_bottom(implementation, num_views):
    """Every file of the call is entered once, whatever the number of views: each hands the next what
    it needs in one call (the segments' math, say, gives every view's probabilities and the pairs at
    once), and none is re-entered; only a fused implementation's kernel is called once per pair of views,
    its contract being one pair's joint (2 global and 2 local views: 1 + 2 x 2 pairs)."""
    loss_fn = MUSICLoss(segment_dim=8, implementation=implementation)
    views = [torch.randn(16, 64) for _ in range(num_views)]
    loss_fn(views, num_global=2)  # the first call also imports lazily what it needs
    pairs = 1 + 2 * (num_views - 2)
    kernel_again = [] if implementation == "reference" else ["chunked.py"] * (pairs - 1)
    expected = [*VISITS[implementation], *kernel_again]
    # torch 2.4 runs a custom operator's autograd set-up (in fused.py) after its body also when no
    # gradient is wanted; later releases only when one is.
    set_up = [] if implementation == "reference" else ["fused.py"]
    visits = files_visited(lambda: loss_fn(views, num_global=2))
    assert visits in (expected, [*expected, *set_up]), visits
    terms_visits = files_visited(lambda: loss_fn.terms(views, num_global=2))
    with_terms = [*expected, "output.py"]  # the diagnostics alone
    assert terms_visits in (with_terms, [*with_terms, *set_up]), terms_visits


@pytest.mark.parametrize("implementation", sorted(PATHS))
def test_a_call_that_needs_gradients_adds_only_the_operators_autograd_set_up(implementation):
    """With gradients wanted, the reference's call is the same; after a fused operator's body returns,
    torch's autograd calls the operator's set-up (in `fused.py`, which saves dL/dz for the backward)."""
    loss_fn = MUSICLoss(segment_dim=8, implementation=implementation)
    views = [torch.randn(16, 64, requires_grad=True) for _ in range(2)]
    loss_fn(views)
    set_up = [] if implementation == "reference" else ["fused.py"]
    assert files_visited(lambda: loss_fn(views)) == [*VISITS[implementation], *set_up]


def test_the_triton_call_passes_the_fallback_and_its_kernel_files_only(monkeypatch):
    """In Triton's interpreter (the path a GPU takes, launching instead of interpreting)."""
    pytest.importorskip("triton", reason="pip install triton (it comes with torch on Linux)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    from music_ssl import triton_kernel

    if triton_kernel.unavailable_reason(torch.device("cpu")):
        pytest.skip(triton_kernel.unavailable_reason(torch.device("cpu")))
    loss_fn = MUSICLoss(segment_dim=8, implementation="triton")
    views = [torch.randn(16, 64, requires_grad=True) for _ in range(2)]
    loss_fn(views)
    order, edges = calls_between_files(lambda: loss_fn(views))
    # Whether Triton can run here (asked by the registry's choice, through the package's entry, which
    # imports triton at the first call), then the entry's call.
    availability = ["triton_kernel/__init__.py", "triton_kernel/availability.py"]
    operator = ["fused.py", "distributed.py", "segments.py", "fallback.py"]
    # The kernel (through the package's entry, which imports its driver at the first call): the driver,
    # the jitted kernels.
    kernel = ["triton_kernel/joint.py", "triton_kernel/kernels.py"]
    assert order == [*CORE, *availability, *operator, *kernel], order
    assert _downward_only(edges), edges


def files_in_turn(call) -> list[str]:
    """The package's files in which ``call()``'s function calls happen, one entry each time the file of
    the calls changes: a file listed twice was left and entered again (a comprehension or helper of a
    file, called after another file's work, counts as entering it again)."""
    turns: list[str] = []

    def profile(frame, event, arg):
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(str(PACKAGE)):
            here = str(Path(name).resolve().relative_to(PACKAGE))
            if not turns or turns[-1] != here:
                turns.append(here)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return turns


@pytest.mark.parametrize("implementation", sorted(PATHS))
@pytest.mark.parametrize("num_views", [2, 4])
def test_a_forward_call_never_turns_back_to_a_file(implementation, num_views):
    """After the segments' math the operator goes straight to its kernel, and the reference computes the
    rest in place: neither calls one of its own functions between them, so a reader follows the call down
    without turning around."""
    loss_fn = MUSICLoss(segment_dim=8, implementation=implementation)
    views = [torch.randn(16, 64) for _ in range(num_views)]
    loss_fn(views, num_global=2)
    turns = files_in_turn(lambda: loss_fn(views, num_global=2))
    # torch 2.4 then runs a fused operator's autograd set-up (fused.py) also without gradients.
    set_up = [] if implementation == "reference" else ["fused.py"]
    assert turns in (PATHS[implementation], [*PATHS[implementation], *set_up]), turns
