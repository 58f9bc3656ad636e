#!/usr/bin/env bash
# The GPU check, to run from the repository root on a machine with a CUDA GPU (see benchmarks/gpu_check.py).
# It checks the Triton kernel against the float64 reference at full size, then measures forward + backward
# time and peak memory of every loss in benchmarks/methods.py at (N, D) up to (4096, 16384), float32 and
# bfloat16, and profiles the Triton path. Designed to finish in under 7 minutes on an H100: no new
# configuration starts after 400 s (--budget-s), and the run is cut off after 450 s.
#
#   bash benchmarks/gpu_check.sh [extra gpu_check arguments]
#
# Writes gpu_check.md (tables and the verdict on the kernel's targets), gpu_check.json (every row, saved as
# it is measured) and log.txt (nvidia-smi and the full output) to $OUT if set, else results/gpu_check.
# Needs torch with CUDA and triton (it ships with CUDA builds of torch); lightly for the Barlow Twins and
# VICReg rows, which report "lightly not importable" without it. PYTHON picks the interpreter (default
# python3). When that interpreter cannot import lightly but this checkout's .venv holds it (a pure-Python
# package), a copy of it is put on PYTHONPATH.
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
