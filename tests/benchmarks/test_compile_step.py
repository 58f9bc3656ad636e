"""The compiled-step benchmark on a tiny shape: both steps run, agree, and the report is written."""

import json

import pytest

from benchmarks import compile_step


@pytest.mark.timeout(600)
def test_compiled_step_agrees_with_eager_and_is_reported(tmp_path):
    rows = compile_step.main(
        ["--out", str(tmp_path), "--batch-size", "16", "--head", "8,16,32", "--segment-dim", "8",
         "--implementations", "chunked", "--repeats", "2", "--backend", "aot_eager"]
    )  # fmt: skip
    (row,) = rows
    assert row["loss_difference"] < 1e-5
    assert row["relative_gradient_difference"] < 1e-4
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0
    assert json.loads((tmp_path / "compile_step.json").read_text()) == rows
    assert "| 16 | 8-16-32 | 8 | chunked |" in (tmp_path / "compile_step.md").read_text()


@pytest.mark.parametrize(
    "argv,message",
    [(["--head", "8,16"], "--head must be three positive ints"), (["--implementations", "fast"], "unknown")],
)
def test_bad_arguments_are_refused(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compile_step.main(["--out", str(tmp_path), *argv])
    assert message in capsys.readouterr().err
