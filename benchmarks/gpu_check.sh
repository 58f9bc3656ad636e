#!/usr/bin/env bash
# The device run of issue 3 (see benchmarks/gpu_check.py), from the repository root:
#   device run: command "bash benchmarks/gpu_check.sh", carry [".venv/lib/python3.11/site-packages/lightly"],
#   timeout_s 480. Results land in $OUT (the device tool's folder) or results/gpu_check; PYTHON picks
#   the interpreter (default python3, the one holding torch on the device image).
# The device image has torch and triton but not lightly: its pure-Python package travels from this
# checkout's venv (2.7 MB) and is copied onto PYTHONPATH only where python3 cannot import lightly itself.
set -o pipefail
out_dir="${OUT:-results/gpu_check}"
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"
if ! "$python" -c "import lightly" 2>/dev/null; then
    for package in .venv/lib/python3*/site-packages/lightly; do
        if [ -d "$package" ]; then
            site=$(mktemp -d)
            cp -r "$package" "$site/"
            export PYTHONPATH="$PYTHONPATH:$site"
            break
        fi
    done
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out_dir/log.txt"
timeout 450 "$python" -m benchmarks.gpu_check --out "$out_dir" "$@" 2>&1 | tee -a "$out_dir/log.txt"
