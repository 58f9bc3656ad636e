"""Studies of the paper's claims, run in resumable pieces: one JSON file per finished run.

    python -m benchmarks.quality.study seeds              # 5 seeds of the main run's settings
    python -m benchmarks.quality.study field              # MUSIC against six peers from lightly, 3 seeds
    python -m benchmarks.quality.study long               # 3x the epochs on the full 60k split, 5 seeds
    python -m benchmarks.quality.study projector_dim      # output dim 128 ... 4096, 2 seeds, all methods
    python -m benchmarks.quality.study projector_depth    # 0, 1 and 2 hidden layers, 2 seeds
    python -m benchmarks.quality.study music_options      # MUSIC's segment size and term weights per dim
    python -m benchmarks.quality.study projector_dim_tuned  # projector_dim, MUSIC at music_options' choice
    python -m benchmarks.quality.study stability          # every field method, seeds 0-4, 1 and 2 threads
    python -m benchmarks.quality.study optimizer          # LARS at five learning rates against tuned SGD
    python -m benchmarks.quality.study multicrop          # 2 global + 6 local views against 2 views, 3 seeds
    python -m benchmarks.quality.study temperature        # MUSIC at 1.0 against 0.25, the codes' use, 3 seeds
    python -m benchmarks.quality.study temperature_wide   # the same, wider backbone and head, batch 512
    python -m benchmarks.quality.study seeds --methods supervised   # the supervised ceiling, 5 seeds

Every run is written to ``OUT/<study>/runs/<name>.json`` when it finishes and skipped when that file
exists, so a study can be stopped at any time (``--max-runs`` stops it after that many new runs) and
continued later, on another day or machine; a run file made with other settings is refused, never mixed
in. After every run the study's ``table.md``, ``summary.json`` and plot are rewritten from all run files,
so they always say how many seeds each number rests on. Several processes can share one study: each
trains the runs that no other holds (``<run>.lock``), so two one-thread workers use two cores. A run that
another study already made with equal settings is copied, not retrained (the main run's settings are the
1024-dimension point of ``projector_dim``; a ``seeds`` run trained at one thread is the one-thread
``stability`` run of that seed); the copy names its source under ``from``.

Three kinds of run: ``test`` studies train and evaluate on the test split exactly as the main run does
(fixed hyper-parameters from tuned.json: they measure, they choose nothing); ``music_options`` and
``optimizer`` are searches, so they score on the tuning search's validation split, with its short schedule,
and never see the test split; ``stability`` only pretrains and records whether and where a method diverged.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.quality.cli import add_common_arguments, load_data, set_threads
from benchmarks.quality.config import RESULTS, get_profile
from benchmarks.quality.ssl_methods import ALL_METHODS
from benchmarks.quality.study.catalogue import STUDIES, Study, value_label
from benchmarks.quality.study.report import write_report
from benchmarks.quality.study.reuse import import_main_run
from benchmarks.quality.study.runner import run_study
from benchmarks.quality.tuned import method_params

DEFAULT_OUT = RESULTS / "studies"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quality.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", choices=sorted(STUDIES))
    add_common_arguments(p)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: docs/results/quality/studies")
    p.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the study's seeds")
    p.add_argument(
        "--values",
        nargs="+",
        default=None,
        help="only these values of the variable, as the study writes them (128; '2 views' or 2views)",
    )
    p.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs")
    p.add_argument("--report-only", action="store_true", help="rewrite table and plot from the run files")
    p.add_argument(
        "--from-results",
        type=Path,
        default=None,
        help="seeds, stability: first take the matching runs of a main run's results.json",
    )
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs (quick checks)")
    p.add_argument("--subset", type=int, default=None, help="override the pretraining subset (quick checks)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument(
        "--stop-epoch",
        type=int,
        default=None,
        help="stability: stop each run after this epoch of the full schedule; runs go to OUT/firstNepochs/",
    )
    p.add_argument(
        "--save-models",
        type=Path,
        default=None,
        help="test studies: also save each trained model as DIR/<study>/<method>__seed<N>.pt",
    )
    p.add_argument("--tune-val-size", type=int, default=None, help="music_options: validation images")
    p.add_argument("--tuned", type=Path, default=None)
    p.add_argument("--untuned", action="store_true", help="paper defaults at the profile's lr")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads)
    log = functools.partial(print, flush=True)
    study = STUDIES[args.study]
    profile = get_profile(
        args.profile,
        epochs=args.epochs,
        pretrain_subset=args.subset,
        batch_size=args.batch_size,
        tune_val_size=args.tune_val_size,
    )
    if study.kind == "validation" and args.epochs is not None:
        profile = replace(profile, tune_epochs=args.epochs)
    if args.stop_epoch is not None and study.kind != "pretrain":
        raise ValueError(f"--stop-epoch={args.stop_epoch} applies to the stability study only")
    values = None if args.values is None else _chosen_values(study, args.values)
    out = args.out if args.stop_epoch is None else args.out / f"first{args.stop_epoch}epochs"
    if args.from_results is not None:
        import_main_run(study, args.from_results, out, args, log)
    if args.report_only:
        summary = write_report(study, out)
    else:
        data, _ = load_data(args, log)
        params, source = method_params(profile, args.dataset, args.tuned, args.untuned)
        log(f"[{study.name}] hyper-parameters: {source}")
        summary = run_study(study, data, profile, params, out, args, log, values)
    log((out / study.name / "table.md").read_text())
    return summary


def _chosen_values(study: Study, given: list[str]) -> tuple[Any, ...]:
    """The study's values that ``--values`` names, each written as the study writes it or as its run
    files' label (``2 views`` or ``2views``)."""
    by_name = {str(v): v for v in study.values} | {value_label(v): v for v in study.values}
    unknown = [g for g in given if g not in by_name]
    if unknown:
        accepted = ", ".join(repr(str(v)) for v in study.values)
        raise ValueError(
            f"--values={given}: {unknown} not among the {study.name} study's values ({accepted})"
        )
    return tuple(by_name[g] for g in given)
