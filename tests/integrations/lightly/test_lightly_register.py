"""register() and run_benchmark plug MUSIC into a runner shaped like lightly's ImageNet runner."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("lightly", reason="pip install 'music-ssl[lightly]'")
pytest.importorskip("pytorch_lightning", reason="pip install 'music-ssl[lightly]'")

from music_ssl.integrations.lightly import imagenet_resnet50, register, run_benchmark  # noqa: E402


class OtherMethod:
    pass


def runner_methods() -> dict[str, dict[str, object]]:
    """A METHODS dict as in lightly's benchmarks/imagenet/resnet50/main.py."""
    return {"barlowtwins": {"model": OtherMethod, "transform": object()}}


def test_register_adds_music_next_to_the_runner_methods() -> None:
    methods = runner_methods()
    barlowtwins = methods["barlowtwins"]
    assert register(methods) is methods
    assert methods["music"] == {"model": imagenet_resnet50.MUSIC, "transform": imagenet_resnet50.transform}
    assert methods["barlowtwins"] is barlowtwins
    register(methods)  # Registering twice is harmless.
    assert sorted(methods) == ["barlowtwins", "music"]


def test_register_multi_crop_uses_the_multi_crop_transform() -> None:
    methods = runner_methods()
    register(methods)
    register(methods, name="music_multicrop", multi_crop=True)
    assert methods["music_multicrop"] == {
        "model": imagenet_resnet50.MUSIC,
        "transform": imagenet_resnet50.multi_crop_transform,
    }
    assert methods["music"]["transform"] is imagenet_resnet50.transform
    with pytest.raises(ValueError, match=r"'music' .*MUSICTransform; pass another name"):
        register(methods, multi_crop=True)
    with pytest.raises(TypeError, match=r"multi_crop must be a bool, got 'yes'"):
        register(methods, name="other", multi_crop="yes")


def test_register_under_another_name_and_refuses_to_overwrite() -> None:
    methods = runner_methods()
    register(methods, name="music_c80")
    assert methods["music_c80"]["model"] is imagenet_resnet50.MUSIC
    with pytest.raises(ValueError, match="'barlowtwins'"):
        register(methods, name="barlowtwins")


FAKE_RUNNER = """
    from argparse import ArgumentParser

    import fake_method  # a per-method module next to main.py, as in lightly's runner

    parser = ArgumentParser()
    parser.add_argument("--methods", type=str, nargs="+")
    parser.add_argument("--epochs", type=int, default=100)

    METHODS = {"fake": {"model": fake_method.Model, "transform": None}}
    CALLS = []


    def main(methods, epochs):
        CALLS.append({"methods": methods, "epochs": epochs, "registered": sorted(METHODS)})
"""


def write_fake_runner(root: Path) -> Path:
    runner_dir = root / "benchmarks" / "imagenet" / "resnet50"
    runner_dir.mkdir(parents=True)
    (runner_dir / "main.py").write_text(textwrap.dedent(FAKE_RUNNER))
    (runner_dir / "fake_method.py").write_text("class Model:\n    pass\n")
    return runner_dir


def test_run_benchmark_registers_music_and_passes_the_other_arguments(
    tmp_path: Path, monkeypatch, forget_runner
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # Restores sys.path, which load_runner extends.
    write_fake_runner(tmp_path)
    runner_main = run_benchmark.find_runner(tmp_path)
    runner = run_benchmark.load_runner(runner_main)
    assert "fake" in runner.METHODS

    run_benchmark.main(["--lightly-repo", str(tmp_path), "--methods", "music", "--epochs", "1"])

    # main() loads its own copy of the runner; read what that copy recorded.
    recorded = sys.modules[run_benchmark.RUNNER_MODULE].CALLS
    assert recorded == [
        {"methods": ["music"], "epochs": 1, "registered": ["fake", "music", "music_multicrop"]}
    ]


@pytest.fixture
def forget_runner():
    """The runner and its per-method module are imported by name: take them out of sys.modules after."""
    yield
    for name in (run_benchmark.RUNNER_MODULE, "fake_method"):
        sys.modules.pop(name, None)


def test_run_benchmark_reads_lightly_repo_from_the_environment(
    tmp_path: Path, monkeypatch, forget_runner
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    runner_dir = write_fake_runner(tmp_path)
    monkeypatch.setenv("LIGHTLY_REPO", str(runner_dir))  # The runner's own folder works too.
    run_benchmark.main(["--methods", "music"])
    recorded = sys.modules[run_benchmark.RUNNER_MODULE].CALLS
    assert recorded == [
        {"methods": ["music"], "epochs": 100, "registered": ["fake", "music", "music_multicrop"]}
    ]


def test_run_benchmark_explains_a_wrong_repository_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="contains no benchmarks/imagenet/resnet50/main.py"):
        run_benchmark.find_runner(tmp_path)


def test_run_benchmark_help_without_a_repository(monkeypatch, capsys) -> None:
    """--help works before a lightly checkout is named, and says where the runner's arguments are."""
    monkeypatch.delenv("LIGHTLY_REPO", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_benchmark.main(["--help"])
    assert exit_info.value.code == 0
    output = capsys.readouterr()
    assert "--lightly-repo" in output.out
    assert "lists the runner's own arguments" in output.err
