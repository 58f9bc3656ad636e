#!/usr/bin/env bash
# The GPU check, to run from the repository root on a machine with a CUDA GPU (see benchmarks/gpu_check.py).
# It checks the Triton kernel against the float64 reference at full size, then measures forward + backward
# time and peak memory of every loss in benchmarks/loss_methods.py at (N, D) up to (4096, 16384), float32 and
# bfloat16, trains against the reference, and profiles the Triton path. At most 8 minutes in all
# (TOTAL_S, 470 s): the check compiles the kernels of every launch it plans in parallel first, starts no new configuration
# after 330 s (--budget-s) and is cut off after CHECK_S (390 s); then, where compute-sanitizer is found,
# its memcheck runs a small odd shape in the time left, and its verdict is appended to gpu_check.md.
#
#   bash benchmarks/gpu_check.sh [extra gpu_check arguments]
#
# Writes gpu_check.md (tables and the verdict on the kernel's targets), gpu_check.json (every row, saved as
# it is measured) and log.txt (nvidia-smi and the full output) to $OUT if set, else results/gpu_check.
# Needs torch with CUDA and triton (it ships with CUDA builds of torch); lightly for the Barlow Twins,
# VICReg, LeJEPA and VISReg rows, which report "lightly not importable" without it: `make gpu-site` puts
# it (pure Python, no dependencies; its losses need torch alone) in .gpu-site/, which the script finds.
# PYTHON picks the interpreter (default python3).
set -o pipefail
# The whole command's time: the checks and timings are cut off at CHECK_S, the memcheck gets the rest.
TOTAL_S=${TOTAL_S:-470}
CHECK_S=${CHECK_S:-390}
out_dir="${OUT:-results/gpu_check}"
mkdir -p "$out_dir"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"
# lightly, pure Python, for the peers' rows: the folder `make gpu-site` fills (carry it to the GPU
# machine with the working tree), else a copy of this checkout's .venv's.
if ! "$python" -c "import lightly" 2>/dev/null; then
    if [ -d .gpu-site/lightly ]; then
        export PYTHONPATH="$PYTHONPATH:$PWD/.gpu-site"
    else
        for package in .venv/lib/python3*/site-packages/lightly; do
            if [ -d "$package" ]; then
                site=$(mktemp -d)
                cp -r "$package" "$site/"
                export PYTHONPATH="$PYTHONPATH:$site"
                break
            fi
        done
    fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out_dir/log.txt"
# The memcheck's shape: small, and every tile of it ends partially. The check compiles its kernels too.
MEMCHECK_SHAPE=100x255x15
timeout "$CHECK_S" "$python" -m benchmarks.gpu_check --out "$out_dir" --budget-s 330 \
    --warm-shapes "$MEMCHECK_SHAPE" "$@" 2>&1 | tee -a "$out_dir/log.txt"
status=${PIPESTATUS[0]}

# Out-of-bounds or uninitialized accesses of the kernels: compute-sanitizer's memcheck on one small shape
# that ends every tile partially (each kernel runs on it; compiled ahead by the check, so the memcheck
# finds its kernels in Triton's cache), with PyTorch's caching allocator off so that an access past a
# tensor lands outside any allocation, in the time the whole command has left.
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda-*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -n 1)
left=$((TOTAL_S - SECONDS - 5))
if [ -z "$sanitizer" ]; then
    verdict="not run: compute-sanitizer is not installed (looked on PATH and in /usr/local/cuda*/bin)"
elif [ "$left" -lt 20 ]; then
    verdict="not run: $left s were left of the command's $TOTAL_S s"
else
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$left" "$sanitizer" --tool memcheck --error-exitcode 3 \
        "$python" -m benchmarks.gpu_check --out "$out_dir/memcheck" --skip-bench --no-warm-cache \
        --convergence-steps 0 --check-shapes none --odd-shapes "$MEMCHECK_SHAPE" > "$out_dir/memcheck.txt" 2>&1
    case $? in
        0) verdict="no error" ;;
        3) verdict="ERRORS (the kernel must not become auto's default): see memcheck.txt" ;;
        124) verdict="cut off after $left s, no verdict: see memcheck.txt" ;;
        *) verdict="did not finish, no verdict: see memcheck.txt" ;;
    esac
fi
printf '\n## compute-sanitizer memcheck, odd shape %s (N x D x C)\n\n%s\n' "$MEMCHECK_SHAPE" "$verdict" >> "$out_dir/gpu_check.md"
echo "memcheck: $verdict" | tee -a "$out_dir/log.txt"
exit "$status"
