"""Everything the quality benchmark runs, each one declaration: the main run, the tuning search, the codes
studies and the studies of the paper's claims. A study declares its kind (what one run does and how the
study is reported), its values, seeds, how a value changes the main run's settings, and its plot. A new
study is a new entry of ``STUDIES``; ``runner.run`` runs any of them, ``python -m
benchmarks.quality.study NAME`` from the command line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.quality.codes import run_codes
from benchmarks.quality.config import RESULTS, Profile, RunSettings
from benchmarks.quality.data import ImageData, validation_split
from benchmarks.quality.names import Name
from benchmarks.quality.run import evaluate_on_test, pretrain_only, run_main
from benchmarks.quality.search import SPLIT_SEED, run_search, validation_run
from benchmarks.quality.ssl_methods import FIELD_METHODS, GLOBAL_VIEWS, SSL_METHODS, SUPERVISED
from benchmarks.quality.study.codes_report import write_codes_report
from benchmarks.quality.study.main_report import write_main_report, write_tuning_report
from benchmarks.quality.study.plots import SeedsPlot, SweepPlot, ValuesPlot
from benchmarks.quality.study.report import write_report

DIMS = (128, 256, 512, 1024, 2048, 4096)
MUSIC_SEGMENT_DIMS = (8, 16, 32, 64)
MUSIC_WEIGHT_ALTERNATIVES = ({"inv_weight": 2.0}, {"diag_weight": 2.0}, {"off_weight": 2.0})
# LARS learning rates per 256 images from around the papers' 0.2 upwards, against SGD at each method's
# tuned rate. The grid was 0.1-3.0; 3.0 was best for every method, so it was extended by one more factor
# of about 3, as the tuning search extends a grid whose end wins.
LARS_LRS = (0.1, 0.3, 1.0, 3.0, 10.0)
OPTIMIZER_GRID = ({"optimizer": "sgd"}, *({"optimizer": "lars", "lr": lr} for lr in LARS_LRS))


# Multi-crop: 6 local views beside the two global ones, DINO's and SwAV's count (their 2 x 224 px + 6 x 96
# px); the local side and crop areas are the profile's defaults (`config.Profile.local_size`).
LOCAL_VIEWS = 6
# Wall-clock seconds of a MUSIC epoch with the 6 local views over one with the two views alone, measured
# on this benchmark's 2-core machine at one thread (docs/quality.md, "Multi-crop"); the equal-time value
# of the multicrop study trains its epochs divided by this.
MULTI_CROP_TIME_RATIO = 3.1


def _as_given(data: ImageData, profile: Profile, args) -> tuple[ImageData, Profile]:
    return data, profile


def _validation(data: ImageData, profile: Profile, args) -> tuple[ImageData, Profile]:
    """The search's validation split, and its schedule at ``--epochs`` where given."""
    profile = profile if args.epochs is None else replace(profile, tune_epochs=args.epochs)
    return validation_split(data, profile.tune_val_size, seed=SPLIT_SEED), profile


@dataclass(frozen=True)
class Kind:
    """What a study's runs are: how one run is scored (``score``) on the data ``prepare`` gives it, or,
    for a study that is one command of its own, the whole of it (``run``); how the study is reported."""

    name: str  # as summary.json records it
    measure: str = ""  # what the study's table shows
    score: Callable[..., dict[str, Any]] | None = None  # (method, seed, RunSettings, data, args) -> row
    prepare: Callable[..., tuple[ImageData, Profile]] = _as_given  # (data, profile, args)
    run: Callable[..., dict[str, Any]] | None = None  # (study, data, profile, params, out, args, log)
    report: Callable[..., dict[str, Any]] = write_report  # (study, folder, with_plot)
    verdicts: bool = False  # on the test split: MUSIC against each peer, paired by seed
    key: str = "linear_top1"  # the table's number
    copied: bool = False  # a run of another study with equal settings is this study's run
    own_folder: bool = True  # its files in OUT/<name>/, else in OUT itself


TEST = Kind("test", "test linear top-1 (%)", evaluate_on_test, verdicts=True, copied=True)
VALIDATION = Kind("validation", "validation linear top-1 (%)", validation_run, _validation)
PRETRAIN = Kind("pretrain", "final loss", pretrain_only, key="final_loss", copied=True)
MAIN = Kind("main", run=run_main, report=write_main_report, own_folder=False)
SEARCH = Kind("search", run=run_search, report=write_tuning_report, own_folder=False)
CODES = Kind("codes", run=run_codes, report=write_codes_report)
CODES_OF_KEPT_MODELS = replace(CODES, run=functools.partial(run_codes, kept_only=True))


def _unchanged(run: RunSettings, value: Any) -> RunSettings:
    return run


@dataclass(frozen=True)
class Study:
    """Every method on every seed at every value of one variable, all else as in the main run."""

    name: str
    kind: Kind
    variable: str
    values: tuple[Any, ...]
    seeds: tuple[int, ...]
    # The main run's settings changed to those of one value of the variable.
    vary: Callable[[RunSettings, Any], RunSettings] = _unchanged
    plot: SeedsPlot | SweepPlot | ValuesPlot | None = None
    methods: tuple[str, ...] = SSL_METHODS
    # The methods trained at one value, when not every method at every value.
    methods_at: Callable[[Any], tuple[str, ...]] | None = None
    # A value every other value is compared with, method by method (each method minus itself there,
    # paired by seed, with the verdict rule); None: no such comparison.
    reference_value: Any = None
    # The studies whose equal runs are copied first, before the others' (see ``reuses_runs``).
    copies_first_from: tuple[str, ...] = ()
    # What the study's tables call a method, where not its usual name (`names.NAMES`).
    names: tuple[tuple[str, Name], ...] = ()
    # MUSIC at the options ``music_options`` chose for each projection size instead of the tuned ones.
    music_at_chosen_options: bool = False
    # The value whose runs a main run's results.json holds, read from its config; None when it holds none
    # of this study's runs (``--from-results``).
    main_run_value: Callable[[dict[str, Any]], Any] | None = None
    # A table per value with every method's kNN top-1, its cost (seconds per epoch, peak memory of a
    # training step) and MUSIC minus it on both probes.
    per_method_table: bool = False
    # Whether a run another study made with equal settings is copied instead of trained.
    reuses_runs: bool = True
    # Where its files go when no --out is given.
    home: Path = RESULTS / "studies"

    def settings(self, value: Any, profile: Profile, params: dict[str, Any]) -> RunSettings:
        return self.vary(RunSettings(profile, params), value)

    def folder(self, out: Path) -> Path:
        return out / self.name if self.kind.own_folder else out

    def trains(self, method: str, value: Any) -> bool:
        """Whether ``method`` has runs at ``value`` (every method the command names does, unless the
        study says which methods each value has)."""
        return self.methods_at is None or method in self.methods_at(value)


def music_option_grid(dims: tuple[int, ...] = DIMS) -> tuple[dict[str, Any], ...]:
    """Per projection size: every segment size that gives at least two segments, then the three term
    weights doubled one at a time at the tuned segment size. Seven candidates per size, as many as the
    peers' search gave each of them."""
    grid = []
    for dim in dims:
        grid += [{"dim": dim, "segment_dim": c} for c in MUSIC_SEGMENT_DIMS if dim % c == 0 and dim // c >= 2]
        grid += [{"dim": dim, **w} for w in MUSIC_WEIGHT_ALTERNATIVES]
    return tuple(grid)


def _three_times_the_epochs_on_every_image(run: RunSettings, value: Any) -> RunSettings:
    return replace(run, profile=replace(run.profile, epochs=3 * run.profile.epochs, pretrain_subset=None))


def _projector_output_dim(run: RunSettings, value: int) -> RunSettings:
    return replace(run, profile=replace(run.profile, projector_output_dim=int(value)))


def _hidden_layers(run: RunSettings, value: int) -> RunSettings:
    return replace(run, profile=replace(run.profile, projector_num_layers=int(value) + 1))


def _music_options(run: RunSettings, value: dict[str, Any]) -> RunSettings:
    options = {k: v for k, v in value.items() if k != "dim"}
    profile = replace(run.profile, projector_output_dim=int(value["dim"]))
    return replace(run, profile=profile, params={**run.params, **options})


def _optimizer(run: RunSettings, value: dict[str, Any]) -> RunSettings:
    return replace(run, params={**run.params, **value})


def _threads(run: RunSettings, value: int) -> RunSettings:
    return replace(run, threads=int(value))


def equal_time_epochs(epochs: int) -> int:
    """The epochs with the 6 local views that take the wall-clock time of ``epochs`` with two views."""
    return max(1, round(epochs / MULTI_CROP_TIME_RATIO))


TWO_VIEWS = f"{GLOBAL_VIEWS} views"
MULTI_CROP = f"{GLOBAL_VIEWS}+{LOCAL_VIEWS} views"
MULTI_CROP_EQUAL_TIME = f"{MULTI_CROP}, equal time"
# The multicrop study's methods: MUSIC, the paper's two peers, and LeJEPA, whose design takes global and
# local views.
MULTI_CROP_STUDY_METHODS = ("music", "barlow_twins", "vicreg", "lejepa")


def _views(run: RunSettings, value: str) -> RunSettings:
    if value == TWO_VIEWS:
        return run
    profile = replace(run.profile, local_views=LOCAL_VIEWS)
    if value == MULTI_CROP_EQUAL_TIME:
        profile = replace(profile, epochs=equal_time_epochs(profile.epochs))
    return replace(run, profile=profile)


def _multi_crop_methods(value: str) -> tuple[str, ...]:
    return ("music",) if value == MULTI_CROP_EQUAL_TIME else MULTI_CROP_STUDY_METHODS


def _main_run_settings(config: dict[str, Any]) -> str:
    return MAIN_RUN


def _main_run_threads(config: dict[str, Any]) -> int:
    return config["threads"]


# MUSIC's temperature: the tuning search's choice against the authors' 1.0 (the value the loss shipped
# with), at the main run's settings and at a second setting that differs in backbone, projector width
# and batch size.
TUNED_TEMPERATURE = 0.25
AUTHORS_TEMPERATURE = 1.0
TEMPERATURES = (TUNED_TEMPERATURE, AUTHORS_TEMPERATURE)


def _temperature(run: RunSettings, value: float) -> RunSettings:
    return replace(run, params={**run.params, "temperature": float(value)})


def _wide_temperature(run: RunSettings, value: float) -> RunSettings:
    """The 4-conv at twice the channels (512-d features), a 2048-wide projector (64 segments of 32) and
    batch 512, at ``value``."""
    profile = replace(
        run.profile,
        backbone="small_cnn_wide",
        projector_hidden_dim=2048,
        projector_output_dim=2048,
        batch_size=512,
    )
    return _temperature(replace(run, profile=profile), value)


def _temperature_study(name: str, vary: Callable[[RunSettings, Any], RunSettings]) -> Study:
    """MUSIC at the authors' temperature against the searched one, paired by seed with itself at the
    searched value; every run is trained here (none copied from runs that predate the codes' record)."""
    return Study(
        name,
        TEST,
        "temperature",
        TEMPERATURES,
        (0, 1, 2),
        vary=vary,
        plot=ValuesPlot(),
        methods=("music",),
        reference_value=TUNED_TEMPERATURE,
        reuses_runs=False,
    )


MAIN_RUN = "main run"
OUTPUT_DIM_PLOT = SweepPlot("projector output dimension", log2=True)

LONG = "3x epochs, full train split"

STUDIES = {
    s.name: s
    for s in (
        # The main run (python -m benchmarks.quality): every method and both baselines on the profile's
        # seeds, paired; results.json, table.md and plots in --out (default results/quality).
        Study("main", MAIN, "settings", (MAIN_RUN,), (0, 1), home=Path("results/quality")),
        # The tuning search (python -m benchmarks.quality.tune): its winners go to tuned.json.
        Study("tune", SEARCH, "params", (), (0, 1), home=Path("results/tune")),
        # MUSIC's codes as clusterings and for retrieval, on the main run's models, and on the long
        # study's models where they were kept (docs/codes.md).
        Study("codes", CODES, "settings", (MAIN_RUN,), (0, 1), home=RESULTS),
        Study(
            "codes_long",
            CODES_OF_KEPT_MODELS,
            "settings",
            (LONG,),
            (0, 1, 2, 3, 4),
            vary=_three_times_the_epochs_on_every_image,
            home=RESULTS,
        ),
        Study(
            "seeds",
            TEST,
            "settings",
            (MAIN_RUN,),
            (0, 1, 2, 3, 4),
            plot=SeedsPlot(),
            main_run_value=_main_run_settings,
            # The supervised ceiling's runs sit beside the main table's methods at the same seeds.
            methods=(*SSL_METHODS, SUPERVISED),
        ),
        # MUSIC against the losses a user would pick instead, at the main run's settings. Every method is
        # trained here, none copied from the seeds study: the cost is measured in the same runs (the
        # seeds runs predate the memory figure) and every pair of seeds comes from one machine.
        Study(
            "field",
            TEST,
            "settings",
            (MAIN_RUN,),
            (0, 1, 2),
            plot=SeedsPlot(),
            methods=FIELD_METHODS,
            per_method_table=True,
            reuses_runs=False,
        ),
        Study(
            "long",
            TEST,
            "settings",
            (LONG,),
            (0, 1, 2, 3, 4),
            vary=_three_times_the_epochs_on_every_image,
            plot=SeedsPlot(),
        ),
        # The long schedule for MUSIC and the field study's two strongest peers (VICReg and SimCLR), at
        # the seeds MUSIC and VICReg share with `long` (their runs are copied from it).
        Study(
            "field_long",
            TEST,
            "settings",
            (LONG,),
            (0, 1, 2),
            vary=_three_times_the_epochs_on_every_image,
            plot=SeedsPlot(),
            methods=("music", "vicreg", "simclr"),
            per_method_table=True,
        ),
        Study(
            "projector_dim",
            TEST,
            "projector_output_dim",
            DIMS,
            (0, 1),
            vary=_projector_output_dim,
            plot=OUTPUT_DIM_PLOT,
        ),
        Study(
            "projector_depth",
            TEST,
            "hidden_layers",
            (0, 1, 2),
            (0, 1),
            vary=_hidden_layers,
            plot=SweepPlot("projector hidden layers"),
        ),
        Study(
            "music_options",
            VALIDATION,
            "music_options",
            music_option_grid(),
            (0, 1),
            vary=_music_options,
            methods=("music",),
        ),
        # projector_dim again, with MUSIC at the options music_options chose for each width (the peers'
        # runs are projector_dim's, copied).
        Study(
            "projector_dim_tuned",
            TEST,
            "projector_output_dim",
            DIMS,
            (0, 1),
            vary=_projector_output_dim,
            plot=replace(
                OUTPUT_DIM_PLOT, title="MUSIC at music_options' choice per width; mean ± std over seeds"
            ),
            music_at_chosen_options=True,
        ),
        Study(
            "stability",
            PRETRAIN,
            "threads",
            (1, 2),
            (0, 1, 2, 3, 4),
            vary=_threads,
            main_run_value=_main_run_threads,
            methods=FIELD_METHODS,
        ),
        Study("optimizer", VALIDATION, "optimizer", OPTIMIZER_GRID, (0, 1), vary=_optimizer),
        # The searched temperature against the authors', at the main run's settings and a second one.
        _temperature_study("temperature", _temperature),
        _temperature_study("temperature_wide", _wide_temperature),
        # Multi-crop: the two views against 2 global + 6 local views at the same epochs, and MUSIC with
        # the local views at the two views' wall-clock time (fewer epochs). The two-view runs are the
        # field study's, copied (its runs measured their cost on one machine); every method is compared
        # with itself at two views as well as MUSIC with each peer.
        Study(
            "multicrop",
            TEST,
            "views",
            (TWO_VIEWS, MULTI_CROP, MULTI_CROP_EQUAL_TIME),
            (0, 1, 2),
            vary=_views,
            plot=ValuesPlot(),
            methods=MULTI_CROP_STUDY_METHODS,
            methods_at=_multi_crop_methods,
            reference_value=TWO_VIEWS,
            per_method_table=True,
            copies_first_from=("field",),
            names=(("lejepa", Name("LeJEPA [global: the 2 global views, all: every view]", "lightly")),),
        ),
    )
}
