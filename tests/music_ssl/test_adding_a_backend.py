"""Adding a backend touches one registry entry: a toy backend (the chunked kernel under another name,
registered as docs/implementation.md's "Adding a backend" says) is picked up by every generic test."""

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


@pytest.mark.timeout(900)
def test_a_registered_backend_runs_through_every_generic_test(tmp_path):
    report = tmp_path / "report.xml"
    files = [str(ROOT / "tests" / "music_ssl" / name) for name in GENERIC.values()]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "toy", f"--junitxml={report}"]
        + files,
        cwd=ROOT,
        env={**os.environ, "MUSIC_SSL_TEST_TOY_BACKEND": "1", "OMP_NUM_THREADS": "1"},
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
