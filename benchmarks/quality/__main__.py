"""python -m benchmarks.quality: MUSIC vs Barlow Twins vs VICReg, linear probe and kNN on frozen features.

Every method is trained on every seed of the profile (paired: same seeds, images and initial weights);
results.json holds per-method means and standard deviations, MUSIC minus each peer per seed with a 95 %
interval, and a win / tie / loss verdict (rule in benchmarks/quality/stats.py and docs/quality.md). A
method that diverges is recorded as such and the run goes on. The same as ``python -m
benchmarks.quality.study main``; the search that chooses the hyper-parameters is ``python -m
benchmarks.quality.tune``.

Examples:
    python -m benchmarks.quality                       # CPU profile, Fashion-MNIST (Debian's files)
    python -m benchmarks.quality --seeds 0 1 2 3 4     # more seeds, tighter intervals
    python -m benchmarks.quality --profile gpu --dataset cifar10 --data-root data --download
"""

import sys

from benchmarks.quality.study.cli import main

if __name__ == "__main__":
    main(["main", *sys.argv[1:]], prog="python -m benchmarks.quality")
