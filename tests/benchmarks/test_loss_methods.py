"""The one table of methods that the loss benchmark and the GPU check compare (benchmarks/loss_methods.py)."""

import pytest
import torch

from benchmarks import gpu_check, loss_benchmark
from benchmarks import loss_methods as methods
from benchmarks.loss_methods import METHODS, Method, build_step, loss_function, matmul_precision
from benchmarks.triton_compile import lowering_defects
from music_ssl import implementations, music_loss, triton_kernel

# Every method of the table that computes MUSIC (the peers' losses need lightly).
LOSSES = tuple(
    name for name, method in METHODS.items() if name not in methods.NOT_LOSSES and not method.requires
)


def _runnable(name: str) -> bool:
    if METHODS[name].requires and methods.missing_requirement(name):
        return False
    return not name.startswith("triton") or triton_kernel.is_available("cpu")


def test_both_benchmarks_draw_on_the_one_table():
    assert set(gpu_check.DEFAULT_METHODS) == set(METHODS)
    defaults = loss_benchmark.default_methods("cpu")
    assert set(defaults) <= set(METHODS)
    # Every implementation that runs compiled on the CPU, none that runs there only in an interpreter.
    compiled = implementations.compiled_on(torch.device("cpu"))
    assert [name for name in defaults if name in implementations.REGISTRY] == compiled
    tf32 = [name for name, method in METHODS.items() if method.matmul_precision == "high"]
    assert tf32 == ["plain+tf32", "chunked+tf32", "triton+tf32"]


@pytest.mark.parametrize("name", LOSSES)
def test_every_music_method_computes_music(name):
    if not _runnable(name):
        pytest.skip(f"{name} needs Triton's interpreter: {triton_kernel.unavailable_reason('cpu')}")
    z_a, z_b = methods.make_views(20, 48, torch.float32, device="cpu")
    want = music_loss(z_a.double(), z_b.double(), segment_dim=16, implementation="reference")
    with matmul_precision(METHODS[name].matmul_precision):
        got = loss_function(name, 16)(z_a, z_b)
    assert got.item() == pytest.approx(want.item(), abs=1e-5)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_step_runs_forward_and_backward(name):
    if not _runnable(name):
        pytest.skip(f"{name} cannot run here: {methods.missing_requirement(name) or 'no Triton interpreter'}")
    z_a, z_b = (x.requires_grad_() for x in methods.make_views(20, 48, torch.float32, device="cpu"))
    with matmul_precision(METHODS[name].matmul_precision):
        build_step(name, z_a, z_b, segment_dim=16)()
    produces_input_gradients = name not in ("matmul_floor", "triton_joint_only", "triton_joint_nograd")
    assert (z_a.grad is not None and z_b.grad is not None) == produces_input_gradients
    if produces_input_gradients:
        assert torch.isfinite(z_a.grad).all() and z_a.grad.abs().sum() > 0


def test_the_floor_runs_its_products_in_the_dtype_asked_for():
    z_a, z_b = methods.make_views(8, 32, torch.bfloat16, device="cpu")
    assert {x.dtype for x in build_step("matmul_floor", z_a, z_b, 16)()} == {torch.bfloat16}
    floor = build_step("matmul_floor", z_a, z_b, 16, floor_dtype=torch.float32)
    assert {x.dtype for x in floor()} == {torch.float32}


def test_unknown_methods_are_refused_with_the_accepted_names():
    z = torch.zeros(4, 32, requires_grad=True)
    with pytest.raises(ValueError, match=r"unknown method 'simclr'; expected one of \('matmul_floor'"):
        build_step("simclr", z, z, 16)
    with pytest.raises(ValueError, match="unknown method 'simclr'"):
        loss_benchmark.measure("simclr", 4, 32, 16, "cpu", "float32", 1)
    with pytest.raises(ValueError, match="'matmul_floor' is not a loss function"):
        loss_function("matmul_floor", 16)


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(METHODS, "imaginary", Method("needs a package", requires="no_such_package_here"))
    assert methods.missing_requirement("imaginary").startswith("no_such_package_here not importable (")
    assert methods.missing_requirement("chunked") == ""


def test_matmul_precision_is_restored_even_after_an_error():
    before = torch.get_float32_matmul_precision()
    with matmul_precision(None):
        assert torch.get_float32_matmul_precision() == before
    with pytest.raises(RuntimeError), matmul_precision("high"):
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("a failing method")
    assert torch.get_float32_matmul_precision() == before


def test_loss_benchmark_measures_a_tf32_variant():
    row = loss_benchmark.measure("chunked+tf32", 16, 64, 16, "cpu", "float32", 1)
    assert row["method"] == "chunked+tf32" and row["seconds"] > 0


def test_compiled_kernels_are_judged_on_wgmma_and_spills():
    good = {"kernel": "chunk", "dot": "wgmma", "stack_bytes": 0}
    rows = [good, {**good, "dot": "mma"}, {**good, "stack_bytes": 8}, {"kernel": "grad_a", "error": "boom"}]
    assert lowering_defects(rows) == rows[1:]


@pytest.mark.parametrize("name", [name for name in LOSSES if not name.endswith("+tf32")])
def test_several_views_of_every_music_method_compute_the_core_loss(name):
    if not _runnable(name):
        pytest.skip(f"{name} needs Triton's interpreter: {triton_kernel.unavailable_reason('cpu')}")
    views = [x.float() for x in methods.make_views(20, 48, torch.float64, device="cpu")]
    views += [views[0] + torch.randn_like(views[0]) for _ in range(3)]
    want = music_loss([v.double() for v in views], segment_dim=16, num_global=2, implementation="reference")
    got = methods.views_loss_function(name, 16, num_global=2)(views)
    assert got.item() == pytest.approx(want.item(), abs=1e-5)


@pytest.mark.parametrize("name", ["barlow_twins", "vicreg"])
def test_two_view_peers_of_several_views_are_their_mean_over_the_pairs(name):
    pytest.importorskip("lightly", reason="pip install 'music-ssl[bench]' for lightly's peer losses")
    views = [torch.randn(16, 32, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    two_view = loss_function(name, 16)
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    want = sum(two_view(views[i], views[j]) for i, j in pairs) / len(pairs)
    got = methods.views_loss_function(name, 16, num_global=2)(views)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_the_floor_of_several_views_runs_one_set_of_products_per_pair():
    views = [torch.randn(8, 32) for _ in range(4)]
    assert len(methods.build_views_step("matmul_floor", views, 2, 16)()) == 3 * 5


# Run in a fresh interpreter where only torch's own packages, lightly (from the folder given) and this
# checkout import: what a GPU machine with torch and Triton alone has once .gpu-site is carried to it.
_TORCH_ALONE = """
import importlib.abc, sys
ALLOWED = {"torch", "numpy", "triton", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock",
           "fsspec", "typing_extensions", "functorch", "torchgen", "nvidia", "packaging", "setuptools",
           "pkg_resources", "lightly", "music_ssl", "benchmarks"}
class TorchAlone(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ALLOWED or top.startswith("_"):
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine)", name=name)
sys.meta_path.insert(0, TorchAlone())
import torch
from benchmarks import loss_methods
for name in ("barlow_twins", "vicreg", "lejepa", "visreg"):
    assert not loss_methods.missing_requirement(name), loss_methods.missing_requirement(name)
    views = [torch.randn(8, 32) for _ in range(2)]
    print(name, float(loss_methods.views_loss_function(name, 16, 2)(views)))
"""


def test_the_peers_rows_run_with_torch_and_a_carried_lightly_alone(tmp_path):
    """`make gpu-site`'s folder (here a copy of the installed lightly) is all the peers' rows need beside
    torch: lightly's losses load without the package's __init__, which needs torchvision."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    lightly = pytest.importorskip("lightly", reason="pip install 'music-ssl[bench]' for lightly's losses")
    shutil.copytree(Path(lightly.__file__).parent, tmp_path / "lightly")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{tmp_path}", "PYTHONNOUSERSITE": "1"}
    # The venv's own site-packages hold torchvision: the finder above refuses it, as the GPU machine would.
    result = subprocess.run(
        [sys.executable, "-c", _TORCH_ALONE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(line.split() for line in result.stdout.splitlines())
    assert set(values) == {"barlow_twins", "vicreg", "lejepa", "visreg"}
    assert all(torch.isfinite(torch.tensor(float(v))) for v in values.values()), values
