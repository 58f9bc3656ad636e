"""music_forward without stable-pretraining: the views it reads, what it returns, what it logs, its errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from music_ssl import MUSICLoss, MUSICProjectionHead, music_loss
from music_ssl.integrations.stable_pretraining import (
    global_and_local_views,
    music_forward,
    music_log_dict,
    training_views,
)

N, FEATURES, SEGMENT_DIM, PROJ_DIM = 8, 16, 4, 16
LOGGED = {
    "fit/loss",
    "fit/music_inv",
    "fit/music_diag",
    "fit/music_off",
    "fit/music_attribute_entropy",
    "fit/music_attribute_entropy_min",
    "fit/music_confidence",
    "fit/music_code_entropy",
    "fit/music_code_entropy_min",
}


class FakeModule(nn.Module):
    """What music_forward needs from spt.Module: the three attributes, ``training`` and ``log_dict``."""

    forward = music_forward

    def __init__(self, **attributes) -> None:
        super().__init__()
        # Pooled to 4 x 4 first, so that it takes the 2 x 2 px local views of multi-crop too.
        self.backbone = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 4 * 4, FEATURES))
        self.projector = MUSICProjectionHead(FEATURES, 32, PROJ_DIM, segment_dim=SEGMENT_DIM)
        self.music_loss = MUSICLoss(segment_dim=SEGMENT_DIM)
        for name, value in attributes.items():
            setattr(self, name, value)
        self.logged: dict[str, torch.Tensor] = {}
        self.log_options: dict = {}

    def log_dict(self, metrics: dict, **options) -> None:
        self.logged.update(metrics)
        self.log_options = options


def view(seed: int, size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(N, 3, size, size, generator=generator), "label": torch.arange(N) + 10 * seed}


def local_view(seed: int) -> dict[str, torch.Tensor]:
    """A multi-crop local view: a smaller image than the 4 x 4 px global views."""
    return view(seed, size=2)


def test_training_batch_gives_both_views_embeddings_labels_and_the_music_loss():
    module = FakeModule()
    first, second = view(1), view(2)
    out = module({"views": [first, second], "batch_idx": 0}, stage="fit")

    expected_embedding = torch.cat([module.backbone(first["image"]), module.backbone(second["image"])])
    torch.testing.assert_close(out["embedding"], expected_embedding)
    torch.testing.assert_close(out["label"], torch.cat([first["label"], second["label"]]))
    z_a = module.projector(module.backbone(first["image"]))
    z_b = module.projector(module.backbone(second["image"]))
    torch.testing.assert_close(out["loss"], MUSICLoss(segment_dim=SEGMENT_DIM)(z_a, z_b))

    out["loss"].backward()
    for name in ("backbone", "projector"):
        grads = [p.grad for p in getattr(module, name).parameters() if p.requires_grad]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reached the {name}"


def test_training_step_logs_loss_terms_and_segment_diagnostics_per_step_and_epoch():
    module = FakeModule()
    out = module({"views": [view(1), view(2)]}, stage="fit")

    assert set(module.logged) == LOGGED
    torch.testing.assert_close(module.logged["fit/loss"], out["loss"].detach())
    assert not any(value.requires_grad for value in module.logged.values())
    assert module.log_options == {"on_step": True, "on_epoch": True, "sync_dist": True, "batch_size": 1}
    entropy = module.logged["fit/music_attribute_entropy"]
    assert 0 <= module.logged["fit/music_attribute_entropy_min"] <= entropy <= torch.log(torch.tensor(4.0))


def test_log_dict_names_follow_the_stage_and_carry_the_terms():
    z_a, z_b = torch.randn(N, PROJ_DIM), torch.randn(N, PROJ_DIM)
    terms = MUSICLoss(segment_dim=SEGMENT_DIM).terms(z_a, z_b)
    logged = music_log_dict(terms, "validate")

    assert set(logged) == {name.replace("fit/", "validate/") for name in LOGGED}
    torch.testing.assert_close(logged["validate/loss"], terms.loss.detach())
    torch.testing.assert_close(logged["validate/music_inv"], terms.inv)
    torch.testing.assert_close(logged["validate/music_diag"], terms.diag)
    torch.testing.assert_close(logged["validate/music_off"], terms.off)


def test_evaluation_mode_returns_embeddings_without_loss_or_logs():
    module = FakeModule().eval()
    out = module({"views": [view(1), view(2)]}, stage="validate")
    assert set(out) == {"embedding", "label"}
    assert out["embedding"].shape == (2 * N, FEATURES)
    assert module.logged == {}


def test_single_view_batch_gives_its_embedding_and_label_and_no_loss():
    module = FakeModule().eval()
    single = view(3)
    out = module({"image": single["image"], "label": single["label"]}, stage="validate")
    assert set(out) == {"embedding", "label"}
    torch.testing.assert_close(out["embedding"], module.backbone(single["image"]))
    torch.testing.assert_close(out["label"], single["label"])


def test_unlabelled_views_give_no_label():
    module = FakeModule()
    out = module({"views": [{"image": view(1)["image"]}, {"image": view(2)["image"]}]}, stage="fit")
    assert "label" not in out and out["loss"].isfinite()


@pytest.mark.parametrize(
    "batch",
    [
        {"views": [view(1), view(2)]},
        {"views": {"a": view(1), "b": view(2)}},
        # MultiViewTransform({"a": ..., "b": ...}) batches named views at the top level; spt.Module then adds
        # an int batch_idx, which is not a view.
        {"a": view(1), "b": view(2), "batch_idx": 5},
    ],
    ids=["list", "named-under-views", "named-top-level"],
)
def test_training_views_reads_every_multi_view_layout_in_order(batch):
    views = training_views(batch)
    assert [v["label"][-1].item() for v in views] == [N - 1 + 10, N - 1 + 20]


def test_training_views_is_none_for_a_single_view_batch():
    assert training_views({"image": torch.zeros(1, 3, 4, 4), "batch_idx": 0}) is None


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_views_is_a_clear_error(count):
    with pytest.raises(ValueError, match=rf"at least 2 views, got {count}.*MultiViewTransform"):
        FakeModule()({"views": [view(i) for i in range(count)]}, stage="fit")


def projections(module: FakeModule, views: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    return [module.projector(module.backbone(v["image"])) for v in views]


def test_multi_crop_loss_is_the_core_loss_over_global_then_local_views():
    """Views named as stable-pretraining's DINO names them: the loss is music_loss over the projections,
    the global views first, with num_global=2; embeddings and labels are the global views'."""
    module = FakeModule()
    global_1, global_2, local_1, local_2 = view(1), view(2), local_view(3), local_view(4)
    # Named views at the top level, locals between globals, and spt.Module's batch_idx beside them.
    batch = {
        "local_1": local_1,
        "global_1": global_1,
        "local_2": local_2,
        "global_2": global_2,
        "batch_idx": 0,
    }
    out = module(batch, stage="fit")

    z = projections(module, [global_1, global_2, local_1, local_2])
    torch.testing.assert_close(out["loss"], music_loss(z, num_global=2, segment_dim=SEGMENT_DIM))
    # Not the two-view loss of the global views alone: the local views count.
    assert not torch.allclose(out["loss"], music_loss(z[0], z[1], segment_dim=SEGMENT_DIM))
    torch.testing.assert_close(
        out["embedding"], torch.cat([module.backbone(global_1["image"]), module.backbone(global_2["image"])])
    )
    torch.testing.assert_close(out["label"], torch.cat([global_1["label"], global_2["label"]]))
    assert set(module.logged) == LOGGED
    torch.testing.assert_close(module.logged["fit/loss"], out["loss"].detach())
    out["loss"].backward()
    assert module.backbone[-1].weight.grad.abs().sum() > 0


def test_multi_crop_views_without_names_are_told_apart_by_size():
    """A list of views (MultiViewTransform([...])): the largest images are global, in the batch's order."""
    module = FakeModule()
    global_1, global_2, local_1, local_2 = view(1), view(2), local_view(3), local_view(4)
    out = module({"views": [local_1, global_1, global_2, local_2]}, stage="fit")
    z = projections(module, [global_1, global_2, local_1, local_2])
    torch.testing.assert_close(out["loss"], music_loss(z, num_global=2, segment_dim=SEGMENT_DIM))
    assert out["embedding"].shape == (2 * N, FEATURES)


@pytest.mark.parametrize(
    "batch",
    [
        {"views": {"global_a": view(1), "global_b": view(2), "local_a": local_view(3)}},
        {"global_a": view(1), "local_a": local_view(3), "global_b": view(2), "batch_idx": 1},
        {"views": [view(1), local_view(3), view(2)]},
        {"a": view(1), "b": local_view(3), "c": view(2)},
    ],
    ids=["named-under-views", "named-top-level", "list-by-size", "other-names-by-size"],
)
def test_global_and_local_views_of_every_multi_crop_layout(batch):
    global_views, local_views = global_and_local_views(batch)
    assert [v["label"][0].item() for v in global_views] == [10, 20]
    assert [v["label"][0].item() for v in local_views] == [30]
    assert [v["label"][0].item() for v in training_views(batch)] == [10, 20, 30]


def test_three_views_of_one_size_are_all_global():
    module = FakeModule()
    views = [view(1), view(2), view(3)]
    global_views, local_views = global_and_local_views({"views": views})
    assert (len(global_views), local_views) == (3, [])
    out = module({"views": views}, stage="fit")
    z = projections(module, views)
    torch.testing.assert_close(out["loss"], music_loss(z, num_global=3, segment_dim=SEGMENT_DIM))


def test_view_names_that_mix_global_local_and_others_are_a_clear_error():
    with pytest.raises(ValueError, match=r"views \['extra'\] are named neither 'global\.\.\.' nor 'local"):
        global_and_local_views({"global_1": view(1), "local_1": local_view(2), "extra": view(3)})


def test_local_views_without_a_global_view_are_a_clear_error():
    with pytest.raises(ValueError, match=r"at least one global view, got only local ones"):
        global_and_local_views({"views": {"local_1": local_view(1), "local_2": local_view(2)}})


def test_view_without_image_is_a_clear_error():
    with pytest.raises(ValueError, match=r"view 1 must be a dict with an 'image' key, got \['label'\]"):
        training_views({"views": [view(1), {"label": torch.zeros(N)}]})


def test_module_without_music_loss_is_told_how_to_pass_it():
    module = FakeModule()
    del module.music_loss
    with pytest.raises(ValueError, match=r"music_loss=MUSICLoss"):
        module({"views": [view(1), view(2)]}, stage="fit")


def test_single_view_batch_in_training_is_a_clear_error():
    """A training set built with a plain transform: named, instead of no loss and a KeyError in the host."""
    single = view(3)
    with pytest.raises(
        ValueError,
        match=r"single-view batch \(an 'image' key\) in training.*at least two.*MultiViewTransform",
    ):
        FakeModule()({"image": single["image"], "label": single["label"]}, stage="fit")
