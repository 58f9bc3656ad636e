"""python -m benchmarks.quality.tune: the tuning search (`benchmarks.quality.search`), the same as
``python -m benchmarks.quality.study tune``."""

import sys

from benchmarks.quality.study.cli import main

if __name__ == "__main__":
    main(["tune", *sys.argv[1:]], prog="python -m benchmarks.quality.tune")
