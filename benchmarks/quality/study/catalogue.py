"""The studies: each one entry that declares its values, seeds, how a value changes the main run's
settings, and how the study is plotted. A new study is a new entry of ``STUDIES``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from benchmarks.quality.config import Profile
from benchmarks.quality.names import Name
from benchmarks.quality.ssl_methods import FIELD_METHODS, GLOBAL_VIEWS, SSL_METHODS, SUPERVISED

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


@dataclass(frozen=True)
class RunSettings:
    """What one run trains with: the profile, the method's ``lr`` and options, the torch CPU threads."""

    profile: Profile
    params: dict[str, Any]
    threads: int | None = None  # None: the process's own


@dataclass(frozen=True)
class SeedsPlot:
    """Every seed's test accuracy per method, for a study of one value."""


@dataclass(frozen=True)
class ValuesPlot:
    """Every seed's test accuracy per method at each of the study's values, side by side."""


@dataclass(frozen=True)
class SweepPlot:
    """Test linear top-1 of every method over the study's values, mean ± std over seeds."""

    xlabel: str
    log2: bool = False  # a log2 axis, each value a labelled tick
    title: str = "mean ± std over seeds"


def _unchanged(run: RunSettings, value: Any) -> RunSettings:
    return run


@dataclass(frozen=True)
class Study:
    """Every method on every seed at every value of one variable, all else as in the main run."""

    name: str
    kind: str  # "test", "validation" or "pretrain"
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

    def settings(self, value: Any, profile: Profile, params: dict[str, Any]) -> RunSettings:
        return self.vary(RunSettings(profile, params), value)

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


def value_label(value: Any) -> str:
    """A value as run file names and table rows write it."""
    if isinstance(value, dict):
        return "_".join(f"{k}{v}" for k, v in value.items())
    return str(value).replace(" ", "").replace(",", "_")


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
        "test",
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

STUDIES = {
    s.name: s
    for s in (
        Study(
            "seeds",
            "test",
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
            "test",
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
            "test",
            "settings",
            ("3x epochs, full train split",),
            (0, 1, 2, 3, 4),
            vary=_three_times_the_epochs_on_every_image,
            plot=SeedsPlot(),
        ),
        # The long schedule for MUSIC and the field study's two strongest peers (VICReg and SimCLR), at
        # the seeds MUSIC and VICReg share with `long` (their runs are copied from it).
        Study(
            "field_long",
            "test",
            "settings",
            ("3x epochs, full train split",),
            (0, 1, 2),
            vary=_three_times_the_epochs_on_every_image,
            plot=SeedsPlot(),
            methods=("music", "vicreg", "simclr"),
            per_method_table=True,
        ),
        Study(
            "projector_dim",
            "test",
            "projector_output_dim",
            DIMS,
            (0, 1),
            vary=_projector_output_dim,
            plot=OUTPUT_DIM_PLOT,
        ),
        Study(
            "projector_depth",
            "test",
            "hidden_layers",
            (0, 1, 2),
            (0, 1),
            vary=_hidden_layers,
            plot=SweepPlot("projector hidden layers"),
        ),
        Study(
            "music_options",
            "validation",
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
            "test",
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
            "pretrain",
            "threads",
            (1, 2),
            (0, 1, 2, 3, 4),
            vary=_threads,
            main_run_value=_main_run_threads,
            methods=FIELD_METHODS,
        ),
        Study("optimizer", "validation", "optimizer", OPTIMIZER_GRID, (0, 1), vary=_optimizer),
        # The searched temperature against the authors', at the main run's settings and a second one.
        _temperature_study("temperature", _temperature),
        _temperature_study("temperature_wide", _wide_temperature),
        # Multi-crop: the two views against 2 global + 6 local views at the same epochs, and MUSIC with
        # the local views at the two views' wall-clock time (fewer epochs). The two-view runs are the
        # field study's, copied (its runs measured their cost on one machine); every method is compared
        # with itself at two views as well as MUSIC with each peer.
        Study(
            "multicrop",
            "test",
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
