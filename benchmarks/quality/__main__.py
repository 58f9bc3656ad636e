"""python -m benchmarks.quality: MUSIC vs Barlow Twins vs VICReg, linear probe and kNN on frozen features;
the same as ``python -m benchmarks.quality.study main`` (protocol and verdict rule: docs/quality.md).

Examples:
    python -m benchmarks.quality                       # CPU profile, Fashion-MNIST (Debian's files)
    python -m benchmarks.quality --seeds 0 1 2 3 4     # more seeds, tighter intervals
    python -m benchmarks.quality --profile gpu --dataset cifar10 --data-root data --download
"""

import sys

from benchmarks.quality.study.cli import main

if __name__ == "__main__":
    main(["main", *sys.argv[1:]], prog="python -m benchmarks.quality")
