"""View pairs of method=music under solo-learn's multi-crop and how their logs combine; no solo-learn."""

from __future__ import annotations

import pytest
import torch

from music_ssl import music_loss_terms
from music_ssl.integrations.solo_learn.view_pairs import ViewPair, combine_pair_logs, view_pairs


def test_two_large_crops_give_the_single_pair_of_barlow_twins_and_vicreg():
    assert view_pairs(2, 0) == [ViewPair(0, 1, 1.0)]


def test_large_pairs_then_large_small_pairs_with_equal_weights():
    pairs = view_pairs(2, 2)
    assert [(p.first, p.second) for p in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert all(p.weight == pytest.approx(1 / 5) for p in pairs)
    pairs = view_pairs(3, 1)
    assert [(p.first, p.second) for p in pairs] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert sum(p.weight for p in pairs) == pytest.approx(1.0)


def test_one_large_crop_with_small_crops_pairs_each_small_crop_with_it():
    assert [(p.first, p.second) for p in view_pairs(1, 3)] == [(0, 1), (0, 2), (0, 3)]


@pytest.mark.parametrize(("large", "small"), [(1, 0), (0, 0), (0, 4)])
def test_no_pair_of_views_is_refused(large, small):
    with pytest.raises(ValueError, match=f"num_large_crops={large} and num_small_crops={small}"):
        view_pairs(large, small)


@pytest.mark.parametrize(("large", "small"), [(-1, 2), (2, -1)])
def test_negative_counts_are_refused(large, small):
    with pytest.raises(ValueError, match="must be >= 0"):
        view_pairs(large, small)


def test_non_int_counts_are_refused():
    with pytest.raises(TypeError, match="num_small_crops must be an int"):
        view_pairs(2, 1.0)


def test_combined_logs_weight_the_means_and_keep_the_minimum():
    torch.manual_seed(0)
    z = [torch.randn(16, 32) for _ in range(3)]
    pairs = view_pairs(2, 1)
    outputs = [music_loss_terms(z[p.first], z[p.second], segment_dim=8) for p in pairs]
    logs = [out.log_dict(prefix="train_") for out in outputs]
    combined = combine_pair_logs(logs, [p.weight for p in pairs])

    assert set(combined) == set(logs[0])
    expected_loss = sum(p.weight * out.loss for p, out in zip(pairs, outputs, strict=True))
    torch.testing.assert_close(combined["train_music_loss"], expected_loss)
    torch.testing.assert_close(
        combined["train_music_attribute_entropy"],
        sum(p.weight * out.attribute_entropy.mean() for p, out in zip(pairs, outputs, strict=True)),
    )
    # the least used segment of any pair, not a mean of per-pair minima
    lowest = min(out.attribute_entropy.min() for out in outputs)
    torch.testing.assert_close(combined["train_music_attribute_entropy_min"], lowest)


def test_combined_minimum_is_below_the_mean_of_minima():
    logs = [
        {"m_min": torch.tensor(0.1), "m": torch.tensor(1.0)},
        {"m_min": torch.tensor(2.0), "m": torch.tensor(3.0)},
    ]
    combined = combine_pair_logs(logs, [0.5, 0.5])
    assert combined["m_min"].item() == pytest.approx(0.1)
    assert combined["m"].item() == pytest.approx(2.0)


def test_combine_refuses_mismatched_logs():
    with pytest.raises(ValueError, match="one log per weight"):
        combine_pair_logs([{"a": torch.tensor(1.0)}], [0.5, 0.5])
    with pytest.raises(ValueError, match="same names"):
        combine_pair_logs([{"a": torch.tensor(1.0)}, {"b": torch.tensor(1.0)}], [0.5, 0.5])
