"""Adding an implementation touches one registry entry: a toy implementation (the chunked kernel under
another name, registered as docs/implementation.md's "Adding an implementation" says) is picked up by every
generic test."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the generic suite proves of every registered implementation, by the file that proves it.
GENERIC = {
    "values and gradients against the float64 spec": "test_loss_values.py",
    "several views against the float64 spec": "test_multi_view.py",
    "properties": "test_loss_properties.py",
    "mixed precision": "test_mixed_precision.py",
    "torch.compile": "test_compile.py",
    "double backward refused": "test_double_backward.py",
    "forward-mode AD refused": "test_transforms.py",
    "real gloo processes": "test_distributed.py",
    "opcheck of its operator": "test_operator.py",
    "shape propagation": "test_shape_propagation.py",
}


@pytest.mark.processes
@pytest.mark.timeout(900)
def test_a_registered_implementation_runs_through_every_generic_test(tmp_path):
    report = tmp_path / "report.xml"
    files = [str(ROOT / "tests" / "music_ssl" / name) for name in GENERIC.values()]
    # Started outside the checkout, its folder appended to sys.path rather than put first (as `make test`
    # runs the suite), so that `music_ssl` is the installed package, the wheel where the suite tests one.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "toy", f"--junitxml={report}"]
        + ["--rootdir", str(ROOT), "-o", "pythonpath=", "--import-mode=append", *files],
        cwd=tmp_path,
        env={**os.environ, "MUSIC_SSL_TEST_TOY_IMPLEMENTATION": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed: dict[str, int] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        if "toy" in case.get("name", "") and not list(case):  # no failure, error or skip element
            file = case.get("classname", "").rsplit(".", 1)[-1] + ".py"
            passed[file] = passed.get(file, 0) + 1
    missing = [what for what, file in GENERIC.items() if not passed.get(file)]
    assert not missing, (missing, passed)


# Registering, unregistering and "auto", in this process: each test's entries are unregistered after it.


@pytest.fixture
def registered():
    """Registers fused implementations (the chunked kernel under other names, counting its calls) for one
    test."""
    from music_ssl import chunked, implementations

    names: list[str] = []
    calls: dict[str, int] = {}

    def add(name: str, **declared) -> None:
        def kernel(*args):
            calls[name] = calls.get(name, 0) + 1
            return chunked.chunked_joint_terms(*args)

        implementations.register(implementations.fused_implementation(name, kernel, **declared))
        names.append(name)

    yield add, calls
    for name in names:
        if name in implementations.REGISTRY:
            implementations.unregister(name)


def _views(seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(16, 32, generator=generator, requires_grad=True) for _ in range(2)]


def test_a_refused_registration_changes_nothing_and_the_earlier_implementation_keeps_working(registered):
    import gc

    import torch

    from music_ssl import MUSICLoss, chunked, implementations

    add, calls = registered
    add("mine")
    z_a, z_b = _views()
    want = MUSICLoss(segment_dim=8, implementation="chunked")(z_a, z_b)
    for name in ("mine", "chunked"):  # re-running the cell, or naming an implementation like a built-in one
        with pytest.raises(ValueError, match=f"named '{name}' is already registered"):
            implementations.register(implementations.fused_implementation(name, chunked.chunked_joint_terms))
    gc.collect()  # the refused entries are gone; the registered operators must not be
    for implementation in ("mine", "chunked", "auto"):
        loss = MUSICLoss(segment_dim=8, implementation=implementation)(z_a, z_b)
        torch.testing.assert_close(loss, want)
        loss.backward()
    assert calls["mine"] == 1


@pytest.mark.parametrize("name", ["my-implementation", "2fast", "", "auto", 3])
def test_a_name_that_cannot_name_an_implementation_is_refused_clearly(name):
    from music_ssl import chunked, implementations

    with pytest.raises(ValueError, match="implementation name|already registered") as error:
        implementations.register(implementations.fused_implementation(name, chunked.chunked_joint_terms))
    assert repr(name) in str(error.value)
    assert name not in implementations.REGISTRY or name == "auto"


def test_auto_picks_a_registered_implementation_that_declares_the_device_until_it_is_unregistered(registered):
    import torch

    from music_ssl import MUSICLoss, implementations

    add, calls = registered
    add("cpu_first", auto_devices=("cpu",))
    z_a, z_b = _views()
    MUSICLoss(segment_dim=8)(z_a, z_b)
    assert calls == {"cpu_first": 1}
    add("unproven", auto_devices=("cpu",), proven=lambda: False)  # declared, not proven: skipped
    MUSICLoss(segment_dim=8)(z_a, z_b)
    assert calls == {"cpu_first": 2}
    implementations.unregister("cpu_first")
    MUSICLoss(segment_dim=8)(z_a, z_b)  # the built-in chunked again
    assert calls == {"cpu_first": 2}
    with pytest.raises(ValueError, match="implementation must be one of .*got 'cpu_first'"):
        MUSICLoss(segment_dim=8, implementation="cpu_first")
    add("cpu_first", auto_devices=("cpu",))  # the name can be registered again: a new operator
    torch.testing.assert_close(
        MUSICLoss(segment_dim=8)(z_a, z_b), MUSICLoss(segment_dim=8, implementation="chunked")(z_a, z_b)
    )
    assert calls == {"cpu_first": 3}


def test_built_in_and_unknown_implementations_cannot_be_unregistered():
    from music_ssl import implementations

    built_in = list(implementations.BUILT_IN)
    assert built_in and set(built_in) <= set(implementations.choices())
    for name in (*built_in, "never_registered"):
        with pytest.raises(ValueError, match=f"implementation '{name}' cannot be unregistered"):
            implementations.unregister(name)
    assert set(built_in) <= set(implementations.REGISTRY)


@pytest.mark.parametrize("device_type", ["xla", "lazy", "maia", "privateuseone", "cpu"])
def test_auto_has_an_implementation_for_every_device_type(device_type):
    import torch

    from music_ssl import implementations

    chosen = implementations.choose("auto", torch.device(device_type), torch.float32)
    assert chosen.name == "chunked"


def test_what_a_benchmark_times_is_what_the_entries_declare(registered):
    """`compiled_on` lists the implementations that run on a device compiled, from their own entries: one
    interpreted there or unable to run there is left out, a new one that runs is in, in the registry's
    order."""
    import torch

    from music_ssl import implementations

    add, _ = registered
    cpu = torch.device("cpu")
    add("runs_here")
    add("interpreted_here", interpreted_on=("cpu",))
    add("cannot_run_here", unavailable_reason=lambda device: "needs another device.")
    compiled = implementations.compiled_on(cpu)
    assert compiled[-1] == "runs_here"
    assert "interpreted_here" not in compiled and "cannot_run_here" not in compiled
    assert compiled == [name for name in implementations.REGISTRY if name in compiled]
    assert all(name in implementations.REGISTRY for name in compiled)
