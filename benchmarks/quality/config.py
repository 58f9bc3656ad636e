"""The two profiles: everything that is shared by all methods in one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.quality.augment import AugmentConfig

# Where the committed results live, inside the documentation site's folder (the pages show and link them):
# the main run's files, studies/ and codes/.
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results" / "quality"


@dataclass
class Profile:
    name: str
    backbone: str
    epochs: int
    batch_size: int
    pretrain_subset: int | None  # images drawn (seeded) from the train split for pretraining; None = all
    lr: float  # base learning rate per 256 images (scaled linearly with batch_size); tuned per method
    momentum: float
    weight_decay: float
    warmup_epochs: float
    projector_hidden_dim: int
    projector_output_dim: int
    projector_num_layers: int
    augment: AugmentConfig
    monitor_bank: int  # per-epoch kNN monitor: train images in the bank ...
    monitor_queries: int  # ... and test images queried
    monitor_every: int  # epochs between two monitor evaluations (the last epoch is always monitored)
    feature_batch_size: int
    mixed_precision: bool  # bf16 autocast on CUDA; the losses always run in float32
    # The tuning search: its schedule and the held-out validation split of the train set.
    tune_epochs: int
    tune_val_size: int
    tune_probe_train: int | None  # train-part images whose features fit the probe in the search; None = all
    probe_weight_decay: float = 1e-4
    probe_max_iter: int = 300
    knn_ks: tuple[int, ...] = (20, 200)
    knn_temperature: float = 0.07
    seeds: tuple[int, ...] = (0, 1)  # every method trains on each; two is the least that gives an interval
    extra: dict[str, Any] = field(default_factory=dict)
    # Multi-crop: local views per image besides the two global ones (0: the two global views alone), the
    # side in pixels they are resized to and the range of image area each crops. The defaults are the CPU
    # profile's recipe, DINO's and SwAV's 6 local views of 96 px beside 224 px global ones scaled to 28 px
    # (docs/quality.md, "Multi-crop").
    local_views: int = 0
    local_size: int = 14
    local_crop_scale: tuple[float, float] = (0.05, 0.25)

    def to_dict(self) -> dict[str, Any]:
        """Every setting; without local views the multi-crop ones, which then change nothing, are left out,
        so a two-view profile writes the dict it wrote before multi-crop existed (and the run files and
        results made then keep matching)."""
        settings = asdict(self)
        if not self.local_views:
            for key in MULTI_CROP_SETTINGS:
                del settings[key]
        return settings


MULTI_CROP_SETTINGS = ("local_views", "local_size", "local_crop_scale")


CPU = Profile(
    name="cpu",
    backbone="small_cnn",
    epochs=10,
    batch_size=256,
    pretrain_subset=20000,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    warmup_epochs=0.5,
    projector_hidden_dim=1024,
    projector_output_dim=1024,
    projector_num_layers=2,
    augment=AugmentConfig(crop_scale=(0.25, 1.0)),
    monitor_bank=5000,
    monitor_queries=2000,
    monitor_every=2,
    feature_batch_size=1000,
    mixed_precision=False,
    tune_epochs=2,
    tune_val_size=10000,
    tune_probe_train=20000,
    probe_max_iter=100,
)

# ResNet-18 (CIFAR stem) on the full data, the MUSIC authors' CIFAR-10 recipe at 200 epochs.
GPU = Profile(
    name="gpu",
    backbone="resnet18",
    epochs=200,
    batch_size=512,
    pretrain_subset=None,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    warmup_epochs=10,
    projector_hidden_dim=1024,
    projector_output_dim=1024,
    projector_num_layers=3,
    augment=AugmentConfig(crop_scale=(0.2, 1.0), saturation=0.4, blur_p=0.0, solarize_p=0.1),
    monitor_bank=10000,
    monitor_queries=10000,
    monitor_every=5,
    feature_batch_size=2048,
    mixed_precision=True,
    tune_epochs=50,
    tune_val_size=10000,
    tune_probe_train=None,
    probe_max_iter=500,
)

PROFILES = {"cpu": CPU, "gpu": GPU}


@dataclass(frozen=True)
class RunSettings:
    """What one run trains with: the profile, the method's ``lr`` and options, the torch CPU threads."""

    profile: Profile
    params: dict[str, Any]
    threads: int | None = None  # None: the process's own


def get_profile(name: str, **overrides: Any) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"profile={name!r}; expected one of {list(PROFILES)}")
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})
