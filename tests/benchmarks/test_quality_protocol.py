"""The quality benchmark's protocol on a tiny budget: every method trains, evaluation and JSON are sane."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from benchmarks.quality.augment import AugmentConfig, BatchAugment  # noqa: E402
from benchmarks.quality.config import get_profile  # noqa: E402
from benchmarks.quality.data import DEBIAN_FASHION_MNIST, ImageData, load_dataset  # noqa: E402
from benchmarks.quality.evaluate import knn_classify, linear_probe  # noqa: E402
from benchmarks.quality.run import run_benchmark  # noqa: E402
from benchmarks.quality.search import tune  # noqa: E402
from benchmarks.quality.ssl_methods import SSL_METHODS  # noqa: E402
from benchmarks.quality.study.cli import main as cli  # noqa: E402
from benchmarks.quality.train import pretrain  # noqa: E402
from tests.benchmarks.fashion_mnist import first_images, needs_fmnist


def main(argv: list[str]) -> dict:
    """The main run, as ``python -m benchmarks.quality`` runs it."""
    return cli(["main", *argv])


@pytest.fixture(scope="module")
def tiny() -> ImageData:
    return first_images(384, 128)


@pytest.fixture(scope="module")
def profile():
    return replace(
        get_profile("cpu"),
        epochs=1,
        batch_size=64,
        pretrain_subset=256,
        monitor_bank=128,
        monitor_queries=64,
        probe_max_iter=20,
        tune_epochs=1,
        tune_val_size=128,
        tune_probe_train=128,
    )


def test_batch_augment_shapes_and_range():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    aug = BatchAugment(AugmentConfig(blur_p=0.5, solarize_p=0.5), [0.5] * 3, [0.25] * 3)
    out = aug(images)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= -2.0 - 1e-5 and out.max() <= 2.0 + 1e-5  # [0, 1] normalized by 0.5 / 0.25
    assert not torch.allclose(aug(images), aug(images))


def test_backbones_give_their_feature_dims():
    from benchmarks.quality.models import build_backbone

    for name, channels, size, dim in (("small_cnn", 1, 28, 256), ("resnet18", 3, 32, 512)):
        backbone = build_backbone(name, channels)
        assert backbone(torch.randn(2, channels, size, size)).shape == (2, dim) and backbone.out_dim == dim


def test_probes_separate_separable_data():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 5
    y = torch.arange(400) % 4
    x = centers[y] + torch.randn(400, 8, generator=g)
    assert linear_probe(x[:300], y[:300], x[300:], y[300:], 4) > 95
    assert knn_classify(x[:300], y[:300], x[300:], y[300:], 4, ks=(20, 200))[20] > 95


@needs_fmnist
@pytest.mark.parametrize("method", SSL_METHODS)
def test_every_method_trains_a_few_steps(method, tiny, profile):
    aug = BatchAugment(profile.augment, *tiny.channel_stats())
    before = [
        p.detach().clone()
        for p in pretrain(
            method, {"lr": 0.1}, tiny, profile, aug, max_steps=0, monitor=False, progress=False
        ).model.parameters()
    ]
    result = pretrain(method, {"lr": 0.1}, tiny, profile, aug, max_steps=3, progress=False)
    assert not result.diverged
    trained = [h for h in result.history if h["epoch"] > 0]
    assert len(trained) == 1 and torch.isfinite(torch.tensor(trained[0]["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, result.model.parameters(), strict=True))
    assert 0 <= result.history[0]["knn_monitor"] <= 100


def test_lars_scales_each_weight_matrix_by_its_own_norm_and_leaves_vectors_to_plain_sgd(profile):
    from benchmarks.quality.train import LARS_WEIGHT_DECAY, build_model, build_optimizer

    torch.manual_seed(0)
    model = build_model(profile, 1)
    opt = build_optimizer(model, {"optimizer": "lars", "lr": 0.3}, profile)
    decay = {g["weight_decay"] for g in opt.param_groups for _ in g["params"]}
    assert decay == {LARS_WEIGHT_DECAY, 0.0}
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(8, 1, 28, 28)).square().mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    lr = 0.3 * profile.batch_size / 256
    for b, g, p in zip(before, grads, model.parameters(), strict=True):
        if g.norm() == 0:
            continue
        step = float((b - p.detach()).norm())
        if p.ndim > 1:  # the step is trust_coefficient * lr of the weight's own norm, whatever the gradient
            assert step / float(b.norm()) == pytest.approx(1e-3 * lr, rel=1e-2)
        else:  # biases and normalization parameters: a plain SGD step
            assert step == pytest.approx(lr * float(g.norm()), rel=1e-4)


def test_sgd_is_the_default_and_an_unknown_optimizer_is_refused(profile):
    from benchmarks.quality.train import build_model, build_optimizer

    model = build_model(profile, 1)
    sgd = build_optimizer(model, {"lr": 0.1}, profile)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["weight_decay"] == profile.weight_decay
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.1 * profile.batch_size / 256)
    with pytest.raises(ValueError, match="optimizer='adam'.*'sgd', 'lars'"):
        build_optimizer(model, {"optimizer": "adam"}, profile)


@needs_fmnist
def test_run_benchmark_reports_every_method_and_baseline(tiny, profile):
    params = {m: {"lr": 0.1} for m in SSL_METHODS}
    results, artifacts = run_benchmark(
        tiny, profile, params, SSL_METHODS, max_steps=2, progress=False, log=lambda *_: None
    )
    assert set(results["methods"]) == {*SSL_METHODS, "raw_pixels", "random_init"}
    for name, row in results["methods"].items():
        assert 0 <= row["linear_top1"] <= 100, name
        assert 0 <= row["knn_top1"] <= 100 and 0 <= row["knn_top1_k200"] <= 100, name
        assert row["seconds"] >= 0
    assert set(results["comparison"]["peers"]) == {"barlow_twins", "vicreg", "raw_pixels", "random_init"}
    s, c = 1024 // 32, 32
    assert artifacts.music_probabilities.shape == (128, s, c)


@needs_fmnist
def test_seeds_side_by_side_give_the_same_numbers_as_one_after_another(tiny, profile):
    params = {m: {"lr": 0.1} for m in SSL_METHODS}
    two_seeds = replace(profile, seeds=(0, 1), probe_max_iter=10)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread in both cases: the same arithmetic, so the same bits
    try:
        runs = [
            run_benchmark(
                tiny,
                two_seeds,
                params,
                ("music",),
                max_steps=2,
                progress=False,
                log=lambda *_: None,
                workers=w,
            )[0]
            for w in (1, 2)
        ]
    finally:
        torch.set_num_threads(threads)
    assert [r["seed_workers"] for r in runs] == [1, 2]
    for name in ("music", "random_init"):
        one_by_one, side_by_side = (r["methods"][name]["per_seed"] for r in runs)
        assert [r["seed"] for r in side_by_side] == [0, 1]
        for a, b in zip(one_by_one, side_by_side, strict=True):
            assert (a["linear_top1"], a["knn_top1"]) == (b["linear_top1"], b["knn_top1"]), name
    curves = [[(h["loss"], h["knn_monitor"]) for h in r["methods"]["music"]["history"]] for r in runs]
    assert curves[0] == curves[1]


@needs_fmnist
def test_tune_chooses_on_validation_only(tiny, profile):
    # One method keeps this test short; the search loop is the same for every method.
    entry = tune(tiny, profile, "tiny", ("vicreg",), progress=False, path=None, log=lambda *_: None)
    assert set(entry["chosen"]) == {"vicreg"}
    for method, rows in entry["trials"].items():
        # three learning rates (+1 when the best is at an end of the grid), two loss alternatives (+1 step
        # further when one of them won)
        assert 5 <= len(rows) <= 7
        assert entry["chosen"][method] in [r["params"] for r in rows]
        for r in rows:
            assert [s["seed"] for s in r["per_seed"]] == [0, 1]
            assert r["diverged"] or 0 <= r["linear_top1"] <= 100


def fake_data() -> ImageData:
    """Eight blank images: for searches whose scores are faked."""
    return ImageData(
        "fake",
        torch.zeros(8, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(8, dtype=torch.long),
        torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(2, dtype=torch.long),
        10,
        [],
    )


def test_tune_never_chooses_a_candidate_that_diverged_on_any_seed(monkeypatch):
    import benchmarks.quality.search as search_module

    # lr 0.1 scores best on seed 0 but diverges on seed 1; lr 0.03 is the best stable candidate.
    score = {0.01: 70.0, 0.03: 80.0, 0.1: 90.0, 0.3: 60.0}

    def fake_score(method, params, split, profile, augment, seed, device, progress):
        diverged = params["lr"] == 0.1 and seed == 1
        acc = None if diverged else score[params["lr"]] - (params.get("lambda_param", 25.0) != 25.0)
        event = {"epoch": 1, "step": 3, "last_finite_loss": 1.0, "reason": "non-finite loss"}
        return {
            "seed": seed,
            "linear_top1": acc,
            "knn_top1": acc,
            "diverged": event if diverged else None,
            "seconds": 0.0,
        }

    monkeypatch.setattr(search_module, "score_config", fake_score)
    monkeypatch.setattr(search_module, "validation_split", lambda data, n, seed: data)
    data = fake_data()
    entry = tune(
        data, get_profile("cpu"), "fake", ("vicreg",), path=None, progress=False, log=lambda *_: None
    )
    rows = entry["trials"]["vicreg"]
    lr_01 = next(r for r in rows if r["params"]["lr"] == 0.1)
    assert lr_01["diverged"][0]["seed"] == 1 and lr_01["linear_top1"] is None
    assert entry["chosen"]["vicreg"] == {"lr": 0.03, "lambda_param": 25.0, "mu_param": 25.0, "nu_param": 1.0}
    with pytest.raises(ValueError, match="seeds"):
        tune(data, get_profile("cpu"), "fake", ("vicreg",), seeds=(0,), path=None, log=lambda *_: None)


def test_a_safety_override_outlives_a_search_only_while_it_still_chooses_the_replaced_value(
    monkeypatch, tmp_path
):
    import benchmarks.quality.search as search_module

    best_lr = {"value": 0.03}

    def fake_score(method, params, split, profile, augment, seed, device, progress):
        acc = 90.0 - 10 * abs(params["lr"] - best_lr["value"]) - (params.get("lambda_param", 25.0) != 25.0)
        return {"seed": seed, "linear_top1": acc, "knn_top1": acc, "diverged": None, "seconds": 0.0}

    monkeypatch.setattr(search_module, "score_config", fake_score)
    monkeypatch.setattr(search_module, "validation_split", lambda data, n, seed: data)
    data = fake_data()
    profile = get_profile("cpu")
    searched = {"lr": 0.03, "lambda_param": 25.0, "mu_param": 25.0, "nu_param": 1.0}
    safer = {**searched, "lr": 0.01}
    override = {"searched": searched, "chosen": safer, "why": "diverged in a full-length run"}
    path = tmp_path / "tuned.json"
    path.write_text(
        json.dumps({"cpu/fake": {"chosen": {"vicreg": safer}, "safety_overrides": {"vicreg": override}}})
    )

    def search():
        tune(data, profile, "fake", ("vicreg",), path=path, progress=False, log=lambda *_: None)
        return json.loads(path.read_text())["cpu/fake"]

    entry = search()  # the search picks lr 0.03 again: the main run keeps lr 0.01
    assert entry["trials"]["vicreg"][0]["params"]["lr"] == 0.03
    assert entry["chosen"]["vicreg"] == safer and entry["safety_overrides"] == {"vicreg": override}

    best_lr["value"] = 0.1  # now the search picks another value: the override no longer applies
    entry = search()
    assert entry["chosen"]["vicreg"] == {**searched, "lr": 0.1} and "safety_overrides" not in entry


@needs_fmnist
def _image_folder(tmp_path):
    """A tiny image folder of Fashion-MNIST (three classes, 16 images each, in both splits)."""
    from torchvision.transforms.functional import to_pil_image

    full = load_dataset("fashion_mnist", DEBIAN_FASHION_MNIST)
    root = tmp_path / "folder"
    for split, images, labels in (
        ("train", full.train_images, full.train_labels),
        ("test", full.test_images, full.test_labels),
    ):
        for cls in range(3):
            (root / split / str(cls)).mkdir(parents=True)
            for i in (labels == cls).nonzero().flatten()[:16].tolist():
                to_pil_image(images[i]).save(root / split / str(cls) / f"{i}.png")
    return root


def test_cli_writes_results_json_table_and_plots(tmp_path):
    # The end-to-end command on a tiny image folder (the imagefolder reader, the CLI, the JSON, the plots).
    root = _image_folder(tmp_path)
    out = tmp_path / "out"
    main(
        [
            "--dataset",
            "imagefolder",
            "--data-root",
            str(root),
            "--out",
            str(out),
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--no-progress",
            "--untuned",
            "--image-size",
            "28",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"methods", "config", "versions"}
    assert set(results["methods"]) == {"music", "barlow_twins", "vicreg", "raw_pixels", "random_init"}
    for row in results["methods"].values():
        assert {"linear_top1", "knn_top1", "seconds"} <= set(row)
        assert 0 <= row["linear_top1"] <= 100
    assert results["config"]["dataset"] == "imagefolder"
    assert {"torch", "lightly", "cpu", "cpu_capability"} <= set(results["versions"])
    assert results["versions"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "| MUSIC (music-ssl) |" in (out / "table.md").read_text()
    for name in ("accuracy_over_epochs", "time_per_epoch", "music_attribute_usage", "music_attribute_grid"):
        assert (out / f"{name}.png").stat().st_size > 1000


@needs_fmnist
def test_every_method_starts_from_the_same_weights_and_images(tiny, profile):
    # Paired seeds: on one seed every method starts from the same backbone and projector weights and
    # sees the same augmented batches; on another seed both differ.
    aug = BatchAugment(profile.augment, *tiny.channel_stats())

    def start(method, seed):
        model = pretrain(method, {"lr": 0.1}, tiny, profile, aug, seed, max_steps=0, monitor=False).model
        return [p.detach().clone() for p in model.parameters()]

    music, vicreg, other_seed = start("music", 3), start("vicreg", 3), start("music", 4)
    assert all(torch.equal(a, b) for a, b in zip(music, vicreg, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(music, other_seed, strict=True))
    batches = [aug(tiny.train_images[:8], torch.Generator().manual_seed(3 + 3)) for _ in range(2)]
    assert torch.equal(batches[0], batches[1])


@needs_fmnist
def test_a_main_run_cut_short_goes_on_from_its_run_files(tmp_path, monkeypatch):
    """Each method's run on each seed is a run file as it finishes: the same command again trains only
    what is missing, with the same numbers, and a command with other settings is refused, not mixed in."""
    from benchmarks.quality import run

    root = _image_folder(tmp_path)
    out = tmp_path / "out"
    argv = ["--dataset", "imagefolder", "--data-root", str(root), "--out", str(out), "--batch-size", "16"]
    argv += ["--epochs", "1", "--max-steps", "2", "--no-progress", "--untuned", "--image-size", "28"]
    argv += ["--methods", "music", "vicreg", "--workers", "1"]
    trained: list[tuple[str, int]] = []
    train_and_evaluate = run.train_and_evaluate

    def counted(method, settings, data, seed, args, **options):
        trained.append((method, seed))
        return train_and_evaluate(method, settings, data, seed, args, **options)

    monkeypatch.setattr(run, "train_and_evaluate", counted)
    first = main(argv)
    assert sorted(trained) == [("music", 0), ("music", 1), ("vicreg", 0), ("vicreg", 1)]
    assert (out / "runs" / "music__seed0.pt").is_file()  # the first seed's probabilities, for the plots

    trained.clear()
    (out / "runs" / "music__seed1.json").unlink()  # cut short before MUSIC's second seed finished
    (out / "music_attribute_grid.png").unlink()
    again = main(argv)
    assert trained == [("music", 1)]
    for method in ("music", "vicreg", "random_init"):
        before, after = (r["methods"][method]["per_seed"] for r in (first, again))
        assert [row["linear_top1"] for row in after] == [row["linear_top1"] for row in before], method
    assert (out / "music_attribute_grid.png").stat().st_size > 1000  # drawn from the saved probabilities

    with pytest.raises(ValueError, match="made with other settings"):
        main([*argv, "--max-steps", "3"])
