"""The quality benchmark's one engine (``python -m benchmarks.quality.study NAME``, see ``cli.py``).

``catalogue`` declares everything it runs (the main run, the search, the codes studies, the studies of
the paper's claims); ``runner`` runs a declaration: a study's missing runs, each kept by ``store`` as one
file (one resume rule, a lock shared between processes), or runs copied from equal ones elsewhere;
``report`` (a study's), ``main_report`` (the main run's and the search's), ``codes_report`` and ``plots``
turn the recorded results into every table, summary and PNG.
"""
