"""The implementations the generic tests run, read from the registry: the one list the suite has.

A test parametrizes over `params(...)` (or loops over `names(...)`), never over names of its own, so an
implementation added with `music_ssl.implementations.register` is tested by every generic test at once.

With MUSIC_SSL_TEST_TOY_IMPLEMENTATION=1 in the environment, importing this module registers "toy": the
chunked kernel under another name, as a new implementation would be added.
`test_adding_an_implementation.py` runs the generic suite that way and checks that every part of it picked
the toy up.
"""

from __future__ import annotations

import os

import pytest
import torch

from music_ssl import chunked, implementations

TOY = "toy"
CPU = torch.device("cpu")

if os.environ.get("MUSIC_SSL_TEST_TOY_IMPLEMENTATION") == "1" and TOY not in implementations.REGISTRY:
    implementations.register(implementations.fused_implementation(TOY, chunked.chunked_joint_terms))


def _interpreted(entry: implementations.Implementation) -> bool:
    """Whether the entry runs on CPU tensors only in an interpreter (as it declares: Triton's): the generic
    tests that run many shapes leave it out (`interpreted=False`); its own tests run it on small shapes."""
    return CPU.type in entry.interpreted_on


def names(fused_only: bool = False, auto: bool = False, interpreted: bool = True) -> list[str]:
    """The registered implementations that run on CPU tensors here, in the registry's order; with
    ``fused_only`` only those of the fused operator; ``auto`` adds "auto"."""
    chosen = [
        entry.name
        for entry in implementations.REGISTRY.values()
        if (entry.fused or not fused_only)
        and (interpreted or not _interpreted(entry))
        and not entry.unavailable_reason(CPU)
    ]
    return chosen + (["auto"] if auto else [])


def params(fused_only: bool = False, auto: bool = False, interpreted: bool = True) -> list:
    """`names` as pytest parameters, with every registered implementation that cannot run here listed as
    a skip that gives its reason."""
    out = []
    for entry in implementations.REGISTRY.values():
        if (fused_only and not entry.fused) or (not interpreted and _interpreted(entry)):
            continue
        reason = entry.unavailable_reason(CPU)
        out.append(pytest.param(entry.name, marks=pytest.mark.skipif(bool(reason), reason=reason or "runs")))
    return out + (["auto"] if auto else [])


def ways(interpreted: bool = True) -> list[str]:
    """Every registered implementation that runs on CPU tensors here with every exchange it declares
    (`Implementation.exchanges`), for the distributed tests: its name for the default exchange, "gather",
    and "<name>+<exchange>" for another; `options` turns one into the loss's keyword arguments."""
    return [
        name if exchange == "gather" else f"{name}+{exchange}"
        for name in names(interpreted=interpreted)
        for exchange in implementations.REGISTRY[name].exchanges
    ]


def options(way: str) -> dict[str, str]:
    """`ways`' entry as MUSICLoss's keyword arguments: {"implementation": ..., "exchange": ...}."""
    name, _, exchange = way.partition("+")
    return {"implementation": name, "exchange": exchange or "gather"}
