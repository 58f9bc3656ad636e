"""The verdict statistics of the quality benchmark (benchmarks/quality/stats.py): paired differences by
seed, the Student-t interval of their mean and the win / tie / loss rule."""

from __future__ import annotations

import math
import statistics

import pytest

from benchmarks.quality.stats import MIN_SPREAD, compare, mean_interval, paired_difference, t_quantile


def _rows(**by_seed):
    """Rows of one method: seed -> linear top-1 (None: not measured)."""
    return [{"seed": int(s[1:]), "linear_top1": v, "knn_top1": v} for s, v in by_seed.items()]


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (30, 2.0423)])
def test_t_quantile_matches_the_two_sided_95_percent_table(df, expected):
    assert t_quantile(df) == pytest.approx(expected, abs=1e-4)


def test_mean_interval_is_the_t_interval_of_the_mean():
    values = [1.0, 2.0, 4.0]
    out = mean_interval(values)
    half = 4.3027 * statistics.stdev(values) / math.sqrt(3)
    assert out["n"] == 3 and out["mean"] == pytest.approx(7 / 3)
    assert out["std"] == pytest.approx(statistics.stdev(values))
    assert out["ci95"] == pytest.approx([7 / 3 - half, 7 / 3 + half], abs=1e-3)


def test_one_value_gives_no_interval():
    assert mean_interval([0.7]) == {"n": 1, "mean": 0.7, "std": None, "ci95": None}
    assert mean_interval([]) == {"n": 0, "mean": None, "std": None, "ci95": None}


def test_seeds_that_agree_exactly_still_give_an_interval_of_one_step():
    # Two seeds with the same difference: the sample measures no spread, so the interval is built from
    # one step of the accuracy instead of collapsing to a point that would call a win from two seeds.
    d = paired_difference(_rows(s0=87.30, s1=87.31), _rows(s0=87.25, s1=87.26), "linear_top1")
    assert d["differences"] == [0.05, 0.05]
    assert d["std"] == pytest.approx(0.0, abs=1e-9)  # the sample's own spread is reported as it is
    low, high = d["ci95"]
    assert high - low == pytest.approx(2 * 12.7062 * MIN_SPREAD / math.sqrt(2), abs=1e-3)
    assert low < 0 < high


def test_paired_difference_pairs_by_seed_and_skips_unmeasured_seeds():
    a = _rows(s0=80.0, s1=81.0, s2=82.0, s3=None)
    b = _rows(s3=70.0, s1=80.0, s0=78.0)  # another order, no seed 2
    d = paired_difference(a, b, "linear_top1")
    assert d["seeds"] == [0, 1]
    assert d["differences"] == [2.0, 1.0]
    assert d["mean"] == 1.5


@pytest.mark.parametrize(
    "music,peer,verdict",
    [
        ([88.0, 88.2, 88.1], [87.0, 87.1, 87.2], "win"),
        ([86.0, 86.1, 86.2], [87.0, 87.2, 87.1], "loss"),
        ([87.0, 87.5, 86.8], [87.1, 86.9, 87.2], "tie"),
        ([87.0], [86.0], "undecided"),
    ],
)
def test_verdict_follows_where_the_interval_lies(music, peer, verdict):
    per_seed = {
        "music": [{"seed": i, "linear_top1": v, "knn_top1": v} for i, v in enumerate(music)],
        "vicreg": [{"seed": i, "linear_top1": v, "knn_top1": v} for i, v in enumerate(peer)],
    }
    result = compare(per_seed, "music", ("vicreg",))
    assert result["peers"]["vicreg"]["verdict"] == verdict
    assert f"vs vicreg: {verdict}" in result["summary"]
    assert str(MIN_SPREAD) in result["rule"]


def test_a_method_that_diverged_on_any_seed_gets_no_verdict_and_is_named():
    event = {"seed": 1, "epoch": 0, "step": 7, "last_finite_loss": 3.5, "reason": "non-finite loss"}
    per_seed = {
        "music": _rows(s0=88.0, s1=88.5, s2=88.2),
        "barlow_twins": _rows(s0=80.0, s1=81.0, s2=80.5),
        "vicreg": [
            {"seed": 0, "linear_top1": 87.0, "knn_top1": 85.0},
            {"seed": 1, "linear_top1": None, "knn_top1": None, "diverged": event},
            {"seed": 2, "linear_top1": 87.1, "knn_top1": 85.1},
        ],
    }
    result = compare(per_seed, "music", ("barlow_twins", "vicreg"), names={"vicreg": "VICReg"})
    assert result["diverged"] == ["vicreg"]
    assert result["peers"]["vicreg"]["verdict"] == "diverged"
    assert result["peers"]["vicreg"]["linear_top1"]["seeds"] == [0, 2]  # finished seeds still paired
    assert result["peers"]["barlow_twins"]["verdict"] == "win"
    assert (
        "VICReg diverged: seed 1 (epoch 0, step 7, last finite loss 3.5, non-finite loss)"
        in result["summary"]
    )
