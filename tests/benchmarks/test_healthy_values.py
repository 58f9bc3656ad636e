"""The healthy values of docs/monitoring.md: the three reference points are what the loss returns at them,
for several C, and a short real training run moves every logged key the way the page says."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.healthy_values import KEYS, reference_points, train
from music_ssl import MUSICLoss
from tests.benchmarks.fashion_mnist import needs_fmnist


@pytest.mark.parametrize("segment_dim", [4, 16, 32, 80])
def test_the_reference_points_are_what_the_loss_gives_there(segment_dim):
    points = reference_points(segment_dim)
    loss_fn = MUSICLoss(segment_dim=segment_dim)
    width, n = 4 * segment_dim, 64
    uniform = loss_fn.terms(torch.zeros(n, width), torch.zeros(n, width))
    one_hot = torch.full((n, width), -1e4)
    one_hot[:, ::segment_dim] = 0.0  # every image attribute 0 in every segment, in both views
    collapsed = loss_fn.terms(one_hot, one_hot.clone())
    for out, point in ((uniform, "uniform outputs"), (collapsed, "complete collapse")):
        logged = {k: float(v) for k, v in out.log_dict().items()}
        for key in KEYS:
            if points[point][key] is not None:
                assert logged[key] == pytest.approx(points[point][key], abs=1e-4), (point, key)
    assert collapsed.collapsed_segments(segment_dim) == [0, 1, 2, 3]
    assert collapsed.collapsed_segments(segment_dim, codes=True) == [0, 1, 2, 3]
    assert uniform.collapsed_segments(segment_dim) == []
    assert points["global minimum"]["music_loss"] == pytest.approx(-3 * math.log(segment_dim))


@needs_fmnist
@pytest.mark.timeout(300)
def test_a_short_training_run_moves_every_key_as_the_page_says():
    segment_dim = 16
    log_c = math.log(segment_dim)
    seen = train(segment_dim, steps=40)
    first, last = seen["first step"], seen["step 40"]
    uniform = reference_points(segment_dim)["uniform outputs"]
    # An untrained network sits near uniform outputs (at the default temperature 0.25 a little off: its
    # logits are divided by 0.25, so its random preferences are four times sharper than at 1.0).
    for key in ("music_loss", "music_inv", "music_off", "music_attribute_entropy"):
        assert first[key] == pytest.approx(uniform[key], rel=0.2), key
    # Healthy training: the loss and the invariance term fall, the diagonal term falls towards -log C,
    # the codes sharpen (confidence up), so the off-diagonal term rises from its minimum, and every segment
    # keeps using most of its attributes (no collapse).
    assert last["music_loss"] < first["music_loss"] - 0.3
    assert last["music_inv"] < first["music_inv"] and last["music_diag"] < first["music_diag"]
    assert last["music_confidence"] > first["music_confidence"] + 0.1
    assert -2 * log_c - 1e-4 <= first["music_off"] < last["music_off"]
    assert last["music_attribute_entropy_min"] > 0.5 * log_c
    assert last["music_loss"] > -3 * log_c
    # The hard codes spread over more of the attributes as training goes on, in every segment.
    assert last["music_code_entropy"] > first["music_code_entropy"]
    assert last["music_code_entropy_min"] > 0.5 * log_c


@needs_fmnist
@pytest.mark.timeout(300)
def test_the_code_entropy_shows_coarse_codes_that_the_attribute_entropy_calls_healthy():
    """At the authors' temperature 1.0 on this small CNN, the soft attribute usage stays near log C while
    the hard codes settle on a few attributes per segment: only the code entropy says so."""
    log_c = math.log(16)
    last = train(16, steps=40, temperature=1.0)["step 40"]
    assert last["music_attribute_entropy"] > 0.85 * log_c
    assert last["music_code_entropy"] < 0.6 * log_c


def test_the_collapse_check_refuses_a_bad_fraction_or_segment_dim():
    out = MUSICLoss(segment_dim=4).terms(torch.zeros(8, 16), torch.zeros(8, 16))
    with pytest.raises(ValueError, match=r"fraction must be a float in \(0, 1\), got 1.5"):
        out.collapsed_segments(4, fraction=1.5)
    with pytest.raises(TypeError, match="segment_dim must be an int >= 2"):
        out.collapsed_segments(4.0)
