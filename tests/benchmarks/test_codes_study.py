"""The codes study: its metrics on cases worked by hand, and one tiny end-to-end run, resumed."""

import json

import pytest
import torch

from benchmarks.quality import code_metrics as metrics
from benchmarks.quality import codes
from benchmarks.quality.study.catalogue import LONG, STUDIES
from benchmarks.quality.study.cli import main
from tests.benchmarks.fashion_mnist import needs_fmnist


def test_cluster_accuracy_matches_clusters_to_classes_one_to_one():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert metrics.cluster_accuracy(torch.tensor([2, 2, 0, 0, 1, 1]), labels) == 1.0
    # Two clusters for one class: only one of them can be matched to it.
    assert metrics.cluster_accuracy(torch.tensor([0, 1, 2, 2, 3, 3]), labels) == pytest.approx(5 / 6)
    assert metrics.nmi(torch.tensor([2, 2, 0, 0, 1, 1]), labels) == pytest.approx(1.0)
    assert metrics.nmi(torch.zeros(6, dtype=torch.long), labels) == pytest.approx(0.0)


def test_retrieval_precision_and_average_precision_by_hand():
    database_labels = torch.tensor([0, 1, 0, 1])
    query_labels = torch.tensor([0])
    # Ranking 1, 0, 3, 2 (label 1, 0, 1, 0): precision@1 = 0, @2 = 1/2; AP@4 = (1/2 + 2/4) / 2.
    scores = torch.tensor([[3.0, 4.0, 1.0, 2.0]])
    out = metrics.retrieval(
        lambda i: scores[i], query_labels, database_labels, integer_scores=False, ks=(1, 2, 4)
    )
    assert out["precision@1"] == 0.0 and out["precision@2"] == 0.5
    assert out["mAP@4"] == pytest.approx(0.5)
    # Integer scores that tie go to the earlier database item.
    tied = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    out = metrics.retrieval(lambda i: tied[i], query_labels, database_labels, integer_scores=True, ks=(1, 2))
    assert out["precision@1"] == 1.0


def test_binary_codes_have_the_asked_bits_and_hamming_counts_agreeing_bits():
    database, queries = torch.randn(50, 16), torch.randn(5, 16)
    for b_db, b_q in (
        metrics.random_projection_bits(database, queries, 12, 0),
        metrics.pca_bits(database, queries, 12),
    ):
        assert b_db.shape == (50, 12) and b_q.shape == (5, 12) and b_db.dtype == torch.bool
        want = (b_q[:, None, :] == b_db[None, :, :]).sum(-1).float()
        torch.testing.assert_close(metrics.hamming_similarity(b_q, b_db), want)


@needs_fmnist
@pytest.mark.timeout(600)
def test_a_tiny_study_writes_its_report_and_resumes(tmp_path):
    argv = ["codes", "--epochs", "1", "--subset", "256", "--data-limit", "600", "300", "--queries", "40"]
    argv += ["--seeds", "0", "--out", str(tmp_path), "--models", str(tmp_path / "models"), "--threads", "1"]
    summary = main(argv)
    run = json.loads((tmp_path / "codes" / "runs" / "seed0.json").read_text())
    assert len(run["segments"]) == run["num_segments"] == 32
    assert all(0.0 <= s["nmi"] <= 1.0 and 0.0 < s["accuracy"] <= 1.0 for s in run["segments"])
    results = run["retrieval"]["results"]
    assert results["music_codes"]["bytes"] == 20 == results["vicreg_pca_bits"]["bytes"]  # 32 x 5 bits
    assert results["barlow_twins_float32"]["bytes"] == 4 * 256
    assert sorted(run["settings"]["params"]) == ["barlow_twins", "music", "vicreg"]
    assert summary["segments_nmi"]["max"] >= summary["segments_nmi"]["median"]
    for name in ("table.md", "summary.json", "segment_nmi.png", "attribute_grid.png", "precision_at_k.png"):
        assert (tmp_path / "codes" / name).stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "barlow_twins__seed0.pt",
        "music__seed0.pt",
        "vicreg__seed0.pt",
    ]
    # Resumed: the seed's file is kept, nothing is retrained.
    before = (tmp_path / "codes" / "runs" / "seed0.json").stat().st_mtime_ns
    main(argv)
    assert (tmp_path / "codes" / "runs" / "seed0.json").stat().st_mtime_ns == before
    # A run file made with other settings is refused by the rule every study follows.
    with pytest.raises(ValueError, match="seed0.json was made with other settings"):
        main([*argv, "--queries", "41"])


def test_codes_of_the_long_study_evaluate_only_the_seeds_whose_models_were_kept(tmp_path):
    """codes_long: the long study's schedule, and only seeds with all three kept models; none is
    retrained."""
    from benchmarks.quality.config import get_profile
    from benchmarks.quality.ssl_methods import SSL_METHODS

    for method in SSL_METHODS:
        codes.model_path(tmp_path, method, 3).touch()
    codes.model_path(tmp_path, "music", 4).touch()
    logged = []
    assert codes.kept_seeds(tmp_path, STUDIES["codes_long"].seeds, logged.append) == (3,)
    assert "no kept models" in logged[0] and "[0, 1, 2, 4]" in logged[0]
    main_run = get_profile("cpu")
    profile = STUDIES["codes_long"].settings(LONG, main_run, {}).profile
    assert profile.epochs == 3 * main_run.epochs and profile.pretrain_subset is None
    with pytest.raises(FileNotFoundError, match="--save-models"):
        codes.kept_seeds(tmp_path, (0, 4), logged.append)
