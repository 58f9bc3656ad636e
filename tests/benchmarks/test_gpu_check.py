"""The GPU check (benchmarks/gpu_check.py), rehearsed on CPU tensors in Triton's interpreter.

These tests make sure the script runs end to end, writes its report, and judges the Triton kernel's
targets correctly, without a GPU.
"""

import copy
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check, gpu_report
from benchmarks.gpu_benchmark import row_key
from benchmarks.triton_accuracy import check_key
from music_ssl import triton_kernel

ROOT = Path(__file__).resolve().parents[2]
# The convergence check's training, small enough for Triton's interpreter.
TINY_TRAINING = ["--convergence-steps", "2", "--convergence-batch", "8", "--convergence-width", "64"]

interpreter = pytest.mark.skipif(
    not triton_kernel.is_available("cpu"),
    reason=f"needs Triton's interpreter on CPU tensors: {triton_kernel.unavailable_reason('cpu')} "
    "(tests/conftest.py sets TRITON_INTERPRET=1 on machines without CUDA)",
)


@interpreter
def test_rehearsal_runs_every_check_and_method(tmp_path, monkeypatch):
    pytest.importorskip("lightly", reason="pip install 'music-ssl[bench]' for lightly's peer losses")
    argv = ["--device", "cpu", "--out", str(tmp_path), "--shapes", "24x48", "--segment-dim", "16"]
    argv += ["--check-shapes", "20x90x15", "--odd-shapes", "37x90x15", "--min-seconds", "0", *TINY_TRAINING]
    reports, snapshots = [], []
    render = gpu_check.gpu_report.render

    def snapshot(meta, checks, bench, profile_text, segment_dim, trained=()):
        """The report as written after each row, and what it was written from (where a killed run stops)."""
        snapshots.append(copy.deepcopy((meta, checks, bench, list(trained))))
        reports.append(render(meta, checks, bench, profile_text, segment_dim, trained))
        return reports[-1]

    monkeypatch.setattr(gpu_check.gpu_report, "render", snapshot)
    assert gpu_check.main(argv) == 0

    result = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = [(row["n"], row["dtype"], row["precision"], row["views"]) for row in result["checks"]]
    assert checks == [
        (37, "float32", "tf32", 2),
        (37, "float32", "ieee", 2),
        (37, "float32", "tf32", 4),  # two global views and two local ones
        (20, "float32", "tf32", 2),
        (20, "bfloat16", "tf32", 2),
        (20, "float32", "ieee", 2),
        (20, "bfloat16", "ieee", 2),
    ]
    assert all(row["ok"] is True for row in result["checks"]), result["checks"]
    # Every case is judged against torch's own error on the same inputs.
    assert all(0 <= row["worst_ratio_to_torch"] <= 4 and row["torch_errors"] for row in result["checks"])
    assert {key for key in result["checks"][2] if key.startswith("grad_z_")} == {
        f"grad_z_{i}" for i in range(4)
    }
    # The odd shape ran twice with the same bits; the report was written after every row, the first one
    # already with the accuracy table so far.
    assert [row.get("bitwise_repeat") for row in result["checks"]] == [True, True, *[None] * 5]
    assert len(reports) >= len(checks) + len(result["bench"])
    assert "| 37 | 90 | 15 | 2 | float32 | tf32 |" in reports[0] and "| yes | yes |" in reports[0]

    bench = result["bench"]
    assert [row["method"] for row in bench] == 2 * list(gpu_check.DEFAULT_METHODS)
    assert all("error" not in row and row["seconds"] > 0 for row in bench), bench
    report = (tmp_path / "gpu_check.md").read_text()
    assert "| 20 | 90 | 15 | 2 | bfloat16 | ieee |" in report
    assert "| 24 | 48 | float32 | triton | " in report
    assert "- float32, triton: not measured (not run)" in report  # The targets are for N=2048, D=8192.
    # A rehearsal in the interpreter never clears the kernel to become auto's default.
    assert "Not every check passed (not run on a CUDA device)" in report
    # The training run against the reference: the default implementation and Triton, in both precisions.
    trained = [(row["implementation"], row["autocast"]) for row in result["convergence"]]
    assert trained == [
        ("auto", "float32"),
        ("triton", "float32"),
        ("auto", "bfloat16"),
        ("triton", "bfloat16"),
    ]
    assert all(row["ok"] is True for row in result["convergence"]), result["convergence"]
    assert "## Training against the reference" in report and "| triton | bfloat16 | 2 |" in report

    # Cut off anywhere, the report recommends nothing and names what it lacks: every report but the
    # finished run's, judged as if the run were on a GPU.
    planned = sum(len(keys) for keys in snapshots[-1][0]["planned"].values())
    assert planned == len(checks) + len(bench) + len(trained)
    verdicts = [
        gpu_report.default_verdict({**m, "device_name": "NVIDIA H100"}, c, b, t) for m, c, b, t in snapshots
    ]
    assert verdicts[-1].startswith("Every check passed on NVIDIA H100")
    for (_, done_checks, done_bench, done_training), verdict in zip(
        snapshots[:-1], verdicts[:-1], strict=True
    ):
        assert verdict.startswith("Not every check passed (the run was cut off before it finished"), verdict
        assert "AUTO_USES_TRITON" not in verdict
        left = planned - len(done_checks) - len(done_bench) - len(done_training)
        assert (f"{left} planned row(s) without a result" in verdict) == (left > 0), verdict


GPU_META = {"device_name": "NVIDIA H200", "triton": "3.6.0", "torch": "2.14.1", "finished": True}


def _check(ok=True, n=2048):
    return {"n": n, "d": 8192, "segment_dim": 32, "dtype": "float32", "precision": "tf32", "ok": ok}


def _planned(meta, checks, bench):
    """``meta`` of a run that planned exactly these rows."""
    planned = {"checks": [check_key(c) for c in checks], "bench": [row_key(r) for r in bench]}
    return {**meta, "planned": planned}


def test_the_report_says_how_to_switch_auto_only_when_every_check_passed():
    checks = [_check(), _check(n=256)]
    bench = [_row("chunked", 20.0), _row("triton", 10.0), _row("triton+tf32", 8.0)]
    line = gpu_report.default_verdict(_planned(GPU_META, checks, bench), checks, bench)
    assert line.startswith("Every check passed on NVIDIA H200 with Triton 3.6.0 (torch 2.14.1)")
    assert "set `AUTO_USES_TRITON = True` in music_ssl/implementations.py" in line
    # Out of memory at the largest shape is a limit of the card, not a failure of the kernel.
    oom = [*bench, {**_row("triton", 0.0, n=4096, d=16384), "error": "OOM"}]
    assert gpu_report.default_verdict(_planned(GPU_META, checks, oom), checks, oom).startswith("Every check")

    skipped = [*bench, {**_row("triton", 0.0, n=256), "error": "skipped (time budget)"}]
    peer = [*bench, {**_row("vicreg", 0.0), "error": "lightly not importable"}]
    cases = [
        (checks, [_check(), _check(ok=False)], bench, "1 accuracy check(s) failed"),
        ([], [], bench, "no accuracy check ran"),
        (checks, checks, [_row("chunked", 20.0)], "the Triton kernel was not benchmarked"),
        (
            checks,
            checks,
            [*bench, {**_row("triton", 0.0, n=256), "error": "CompilationError: x"}],
            "1 Triton",
        ),
        (checks, checks, skipped, "1 planned row(s) without a result: 256x8192 float32 triton"),
        (checks, checks, peer, "1 planned row(s) without a result: 2048x8192 float32 vicreg"),
        (checks, checks[:1], bench, "1 planned row(s) without a result: 256x8192x32 float32 tf32"),
    ]
    for planned_checks, check_rows, bench_rows, reason in cases:
        meta = _planned(GPU_META, planned_checks, bench_rows)
        line = gpu_report.default_verdict(meta, check_rows, bench_rows)
        assert line.startswith("Not every check passed (") and reason in line, (reason, line)
        assert line.endswith("implementation='auto' stays on 'chunked'.")
    for meta, reason in (
        (
            {**_planned(GPU_META, checks, bench), "device_name": "cpu (Triton interpreter)"},
            "not run on a CUDA",
        ),
        ({**_planned(GPU_META, checks, bench), "finished": False}, "the run was cut off before it finished"),
        (GPU_META, "the run was cut off before it finished"),  # a report without its plan
    ):
        line = gpu_report.default_verdict(meta, checks, bench)
        assert line.startswith("Not every check passed (") and reason in line, (reason, line)


REHEARSAL = ["--device", "cpu", "--shapes", "24x48", "--segment-dim", "16", "--methods", "chunked,triton"]
REHEARSAL += ["--check-shapes", "20x90x15", "--odd-shapes", "37x90x15", "--min-seconds", "0", *TINY_TRAINING]


@interpreter
@pytest.mark.timeout(600)
def test_a_killed_run_leaves_files_that_say_it_did_not_finish(tmp_path):
    """A real kill, in the middle of the accuracy checks: what is on disk recommends nothing and names
    the rows it lacks (every report before the last is judged in the rehearsal test above)."""
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out), *REHEARSAL]
    run = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "TRITON_INTERPRET": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        rows = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").is_file() else {}
        if len(rows.get("checks", [])) >= 3:
            break
        time.sleep(0.2)
    run.kill()
    run.wait()
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["meta"]["finished"] is False and 3 <= len(result["checks"]) < 7
    verdict = gpu_report.default_verdict(
        {**result["meta"], "device_name": "NVIDIA H100"}, result["checks"], []
    )
    assert "the run was cut off before it finished" in verdict and "24x48 float32 triton" in verdict


@interpreter
def test_the_gate_is_torchs_own_error_times_a_stated_factor(monkeypatch):
    """A kernel as accurate as torch passes; one whose errors are ten times torch's fails, however small."""
    from benchmarks import triton_accuracy

    assert triton_accuracy.check_one(20, 90, 15, "float32", "tf32", "cpu")["ok"] is True
    compute = triton_accuracy._loss_and_gradients

    def worse(views, c, precision, implementation, num_global):
        terms, grads = compute(views, c, precision, implementation, num_global)
        if implementation != "triton":
            return terms, grads
        exact, exact_grads = compute([x.double() for x in views], c, "ieee", "reference", num_global)
        torch_terms, torch_grads = compute(views, c, precision, "reference", num_global)

        # Ten times torch's own deviation from float64, plus ten float32 roundings, all in one direction.
        def off(want, torch_value):
            return want + 10 * (torch_value - want).abs() + 10 * 2**-23 * want.abs().max()

        terms = {k: off(exact[k], torch_terms[k]) for k in terms}
        grads = [off(want, got) for want, got in zip(exact_grads, torch_grads, strict=True)]
        return terms, grads

    monkeypatch.setattr(triton_accuracy, "_loss_and_gradients", worse)
    row = triton_accuracy.check_one(20, 90, 15, "float32", "tf32", "cpu")
    assert row["ok"] is False and row["worst_ratio_to_torch"] > triton_accuracy.TORCH_FACTOR, row


@interpreter
def test_time_budget_skips_but_still_writes_the_report(tmp_path):
    argv = ["--device", "cpu", "--out", str(tmp_path), "--shapes", "24x48", "--segment-dim", "16"]
    argv += ["--check-shapes", "20x90x15", "--budget-s", "0", "--methods", "chunked,triton"]
    assert gpu_check.main(argv) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = result["checks"] + result["bench"]
    assert len(result["bench"]) == 4 and rows
    assert all(row["error"] == "skipped (time budget)" for row in rows)


@interpreter
def test_the_checks_have_their_own_cap_so_the_timings_always_run(tmp_path):
    """A share of the budget for the accuracy checks: checks that would run past it are skipped, and the
    timings after them still run (here the share is 0: no check starts, every timing does)."""
    argv = ["--device", "cpu", "--out", str(tmp_path), "--shapes", "24x48", "--segment-dim", "16"]
    argv += ["--check-shapes", "20x90x15", "--check-share", "0", "--methods", "chunked", "--min-seconds", "0"]
    argv += ["--convergence-steps", "0"]
    assert gpu_check.main(argv) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["checks"] and all(row["error"] == "skipped (time budget)" for row in result["checks"])
    assert result["bench"] and all("error" not in row for row in result["bench"])


def _row(method, ms, peak_mib=64.0, n=2048, d=8192, dtype="float32"):
    return {
        "method": method,
        "n": n,
        "d": d,
        "dtype": dtype,
        "seconds": ms / 1e3,
        "peak_extra_bytes": peak_mib * 2**20,
    }


def test_targets_are_judged_against_plain_and_the_floor():
    rows = [_row("plain", 30.0), _row("matmul_floor", 6.0), _row("triton", 10.0, peak_mib=320.0)]
    (line,) = [x for x in gpu_report.targets(rows) if x.startswith("- float32, triton:")]
    assert "3.0x faster than plain (target >= 3x: met)" in line
    assert "1.67x the float32 matmul floor (target <= 2x: met)" in line
    assert "peak extra memory 5.0 x N*D*4 bytes" in line

    rows = [_row("plain", 20.0), _row("matmul_floor", 4.0), _row("triton", 10.0)]
    (line,) = [x for x in gpu_report.targets(rows) if x.startswith("- float32, triton:")]
    assert "2.0x faster than plain (target >= 3x: MISSED)" in line
    assert "2.50x the float32 matmul floor (target <= 2x: MISSED)" in line


def test_bench_table_compares_with_triton_and_the_floor():
    rows = [_row("matmul_floor", 5.0), _row("triton", 10.0), _row("plain", 40.0, peak_mib=2048.0)]
    rows.append({"method": "vicreg", "n": 2048, "d": 8192, "dtype": "float32", "error": "OOM"})
    table = gpu_report.bench_table(rows).splitlines()
    assert table[2 + 2] == "| 2048 | 8192 | float32 | plain | 40.00 | 4.00x | 8.00x | 2048 | 32.0 |"
    assert table[2 + 3].startswith("| 2048 | 8192 | float32 | vicreg | OOM |")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shapes", "2048x8192x32"], "expected NxD shapes"),
        (["--check-shapes", "2048x8192"], "expected NxDxC shapes"),
        (["--methods", "triton,simclr"], "unknown methods ['simclr']"),
        (["--dtypes", "float64"], "unknown dtypes ['float64']"),
        (["--odd-shapes", "100x250x15"], "--odd-shapes: 100x250x15 has D = 250, no multiple of C = 15"),
        (["--warm-shapes", "8x20x3"], "--warm-shapes: 8x20x3 has D = 20, no multiple of C = 3"),
        (["--convergence-width", "100"], "--convergence-width: 100 is no multiple of the check's"),
    ],
)
def test_bad_arguments_are_refused(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--out", str(tmp_path), *argv])
    assert message in capsys.readouterr().err


nvidia_backend = pytest.mark.skipif(
    importlib.util.find_spec("triton.backends.nvidia") is None,
    reason="needs Triton's NVIDIA backend: pip install torch (a CUDA build) or triton",
)


def _cache_keys(argv: list[str], warm_argv: list[str] | None = None) -> dict:
    """tests/benchmarks/planned_launches.py's answer for gpu_check ``argv`` (the pre-compile planned from
    ``warm_argv`` instead, where given): the cache keys the pre-compile wrote and those the run's launches
    asked for, on a fake sm_90 GPU, in a process of its own."""
    here = Path(__file__).resolve().parent
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(here), *sys.path])
    if warm_argv is not None:
        env["WARM_ARGS"] = json.dumps(warm_argv)
    result = subprocess.run(
        [sys.executable, str(here / "planned_launches.py"), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    keys = {name: {tuple(pair) for pair in answer[name]} for name in ("warmed", "launched")}
    return keys | {"failed": answer["failed"]}


@nvidia_backend
@pytest.mark.timeout(600)
def test_every_planned_launch_finds_its_kernel_in_the_warmed_cache():
    """The default run's plan (every check, benchmark row, the profile and the convergence check): what
    the parallel pre-compile writes into Triton's cache holds every kernel the run's launches then ask
    for, by Triton's own cache key on an sm_90 target (sources specialized by hand, as the pre-compile
    once built them, matched none)."""
    keys = _cache_keys([])
    assert keys["failed"] == []
    assert len(keys["launched"]) > 40  # both precisions, every shape class, with and without gradients
    assert keys["launched"] <= keys["warmed"], sorted(name for name, _ in keys["launched"] - keys["warmed"])


def test_the_training_check_takes_the_batch_and_width_it_is_given(tmp_path, monkeypatch):
    """--convergence-batch and --convergence-width reach the training (the width once did not), which the
    pre-compile plans too."""
    seen = []
    monkeypatch.setattr(
        gpu_check.convergence, "run", lambda names, *args: seen.append(args) or [{"implementation": "x"}]
    )
    args = gpu_check.parse_args(["--out", str(tmp_path), "--convergence-batch", "24"])
    args.convergence_width = 96
    gpu_check._train_curves(args, time.perf_counter() + 60, [], lambda: None)
    assert [(batch, width) for *_, batch, width in seen] == [(24, 96), (24, 96)]
    assert (24, 96, gpu_check.convergence.SEGMENT_DIM, True) in gpu_check.planned_launches(args)


def test_warm_shapes_given_twice_both_count(tmp_path):
    """gpu_check.sh passes the memcheck's shape; a user's own --warm-shapes adds to it."""
    argv = ["--out", str(tmp_path), "--warm-shapes", "100x255x15", "--warm-shapes", "8x32x16"]
    assert gpu_check.parse_args(argv).warm_shapes == [(100, 255, 15), (8, 32, 16)]


@nvidia_backend
@pytest.mark.timeout(300)
def test_the_memcheck_run_finds_its_kernels_compiled_by_the_check():
    """gpu_check.sh's memcheck run (its own arguments there) launches only kernels that the check before
    it compiled ahead with ``--warm-shapes`` of the memcheck's shape: none is compiled under the
    sanitizer."""
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    shape = script.split("MEMCHECK_SHAPE=")[1].split()[0]
    memcheck = ["--skip-bench", "--no-warm-cache", "--convergence-steps", "0", "--check-shapes", "none"]
    memcheck += ["--odd-shapes", shape]
    check = ["--skip-check", "--methods", "chunked", "--convergence-steps", "0", "--warm-shapes", shape]
    keys = _cache_keys(memcheck, warm_argv=check)
    assert keys["launched"] and keys["launched"] <= keys["warmed"]


@nvidia_backend
@pytest.mark.timeout(300)
def test_a_launch_left_out_of_the_pre_compile_is_seen_missing():
    """The comparison can fail: the odd shape's checks (rows no multiple of 16) launched, but left out of
    the pre-compile's plan, ask for kernels the cache does not hold."""
    small = ["--shapes", "256x1024", "--methods", "triton", "--check-shapes", "none"]
    small += ["--convergence-steps", "0"]
    keys = _cache_keys(small, warm_argv=[*small, "--odd-shapes", "none"])
    assert keys["launched"] - keys["warmed"]
    missing = {name for name, _ in keys["launched"] - keys["warmed"]}
    assert missing <= {"joint_chunk_kernel", "scaled_matmul_kernel"}


@nvidia_backend
@pytest.mark.timeout(600)
def test_every_kernel_variant_compiles_for_sm90_on_tensor_cores_without_spills(tmp_path):
    """`gpu_check --compile-only`, as run without a GPU: every (precision, config) variant compiled for
    sm_90, tl.dot lowered to wgmma, no register spilled."""
    from benchmarks.triton_compile import lowering_defects

    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env |= {"TRITON_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--compile-only", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=550)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads((tmp_path / "compile_sm90.json").read_text())
    assert len(rows) == 24 and lowering_defects(rows) == []
    assert {row["precision"] for row in rows} == {"tf32", "tf32x3"}


@interpreter
@pytest.mark.timeout(600)
def test_the_prepared_script_rehearses_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.sh itself, as the GPU machine runs it, with the rehearsal's arguments: it
    exits 0, writes the report with the check's tables and says what became of the memory checker."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    argv = ["--device", "cpu", "--shapes", "24x48", "--segment-dim", "16", "--methods", "chunked,triton"]
    argv += ["--check-shapes", "20x90x15", "--odd-shapes", "37x90x15", "--min-seconds", "0", *TINY_TRAINING]
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_check.sh"), *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "gpu_check.md").read_text()
    assert "| 37 | 90 | 15 | 2 | float32 | tf32 |" in report and "| 24 | 48 | float32 | triton | " in report
    assert "## compute-sanitizer memcheck, odd shape 100x255x15 (N x D x C)" in report
    assert (tmp_path / "log.txt").is_file() and (tmp_path / "gpu_check.json").is_file()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("behaviour", "total_s", "verdict"),
    [
        ("exit 0", 470, "no error"),
        ("exit 3", 470, "ERRORS (the kernel must not become auto's default)"),
        ("sleep 60", 30, "cut off after"),
        ("exit 0", 10, "not run: "),
    ],
)
def test_the_memcheck_verdict_says_what_happened(tmp_path, behaviour, total_s, verdict):
    """A compute-sanitizer in CUDA's usual place is found; its errors, a run cut off by the time left and
    a run with no time left are each reported as such, never as passed. (A stand-in sanitizer, and the
    check itself asked for nothing but its report.)"""
    fake = tmp_path / "bin" / "compute-sanitizer"
    fake.parent.mkdir()
    fake.write_text(f"#!/usr/bin/env bash\n{behaviour}\n")
    fake.chmod(0o755)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "TOTAL_S": str(total_s)}
    env["PATH"] = f"{fake.parent}{os.pathsep}{env['PATH']}"
    argv = ["--device", "cpu", "--skip-check", "--skip-bench", "--convergence-steps", "0"]
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    section = report.split("## compute-sanitizer memcheck")[1]
    assert verdict in section, (section, result.stdout[-2000:])
    assert "no error" not in section or behaviour == "exit 0"
