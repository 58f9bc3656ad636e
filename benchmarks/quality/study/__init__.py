"""Studies of the paper's claims (``python -m benchmarks.quality.study NAME``, see ``cli.py``).

``catalogue`` declares the studies; ``runner`` trains their missing runs, which ``store`` keeps as one
file each (``lock`` shares them between processes, ``reuse`` takes equal runs from elsewhere); ``report``
and ``plots`` turn the run files into ``summary.json``, ``table.md`` and a PNG.
"""
