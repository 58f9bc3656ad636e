"""``music_loss_func``: solo-learn's loss-function shape over the core; needs no solo-learn."""

from __future__ import annotations

import pytest
import torch

import music_ssl.integrations.solo_learn.losses as losses
from music_ssl import MUSICOutput, music_loss, music_loss_terms
from music_ssl.integrations.solo_learn.losses import music_loss_func, music_loss_terms_func

KWARGS = dict(segment_dim=8, temperature=0.5, diag_weight=0.7, off_weight=1.3, inv_weight=2.0)


def test_matches_core_loss():
    z1, z2 = torch.randn(16, 32), torch.randn(16, 32)
    expected = music_loss(z1, z2, **KWARGS)
    torch.testing.assert_close(music_loss_func(z1, z2, **KWARGS), expected)


def test_returns_terms_on_request():
    z1, z2 = torch.randn(16, 32, requires_grad=True), torch.randn(16, 32)
    out = music_loss_terms_func(z1, z2, **KWARGS)
    assert isinstance(out, MUSICOutput)
    torch.testing.assert_close(out.loss, music_loss(z1, z2, **KWARGS))
    assert out.attribute_entropy.shape == (4,) and out.confidence.shape == (4,)
    out.loss.backward()
    assert z1.grad is not None


def test_return_terms_still_works_for_a_release_and_names_its_replacement():
    z1, z2 = torch.randn(16, 32), torch.randn(16, 32)
    with pytest.warns(FutureWarning, match="call music_loss_terms_func instead"):
        out = music_loss_func(z1, z2, **KWARGS, return_terms=True)
    torch.testing.assert_close(out.loss, music_loss(z1, z2, **KWARGS))
    with pytest.raises(TypeError, match="return_terms must be a bool, got 'yes'"):
        music_loss_func(z1, z2, return_terms="yes")


def test_uses_the_global_batch_whenever_several_processes_train(monkeypatch):
    """The one distributed policy of every host: gather_distributed="auto" (two real processes run it in
    tests/music_ssl/test_distributed.py)."""
    seen = {}

    def fake_music_loss(z1, z2, **kwargs):
        seen.update(kwargs)
        return torch.zeros(())

    monkeypatch.setattr(losses, "music_loss", fake_music_loss)
    music_loss_func(torch.randn(4, 16), torch.randn(4, 16), segment_dim=8)
    assert seen["gather_distributed"] == "auto"


def test_passes_the_implementation_on(monkeypatch):
    seen = {}

    def fake_music_loss(z1, z2, **kwargs):
        seen.update(kwargs)
        return torch.zeros(())

    monkeypatch.setattr(losses, "music_loss", fake_music_loss)
    music_loss_func(torch.randn(4, 16), torch.randn(4, 16), segment_dim=8, implementation="reference")
    assert seen["implementation"] == "reference"


def test_refuses_an_unknown_implementation():
    with pytest.raises(ValueError, match="implementation must be one of"):
        music_loss_func(torch.randn(4, 16), torch.randn(4, 16), segment_dim=8, implementation="cuda")


def test_a_list_of_views_is_the_core_multi_view_loss():
    views = [torch.randn(16, 32) for _ in range(5)]
    expected = music_loss(views, num_global=2, **KWARGS)
    torch.testing.assert_close(music_loss_func(views, num_global=2, **KWARGS), expected)
    out = music_loss_terms_func(tuple(views), num_global=2, **KWARGS)
    torch.testing.assert_close(out.loss, expected)
    core = music_loss_terms(views, num_global=2, **KWARGS)
    for got, want in zip(out, core, strict=True):
        torch.testing.assert_close(got, want)


def test_two_views_in_a_list_are_the_two_view_loss():
    z1, z2 = torch.randn(16, 32), torch.randn(16, 32)
    expected = music_loss_func(z1, z2, **KWARGS)
    torch.testing.assert_close(music_loss_func([z1, z2], **KWARGS), expected)
    torch.testing.assert_close(music_loss_terms_func([z1, z2], num_global=2, **KWARGS).loss, expected)


@pytest.mark.parametrize("function", [music_loss_func, music_loss_terms_func], ids=lambda f: f.__name__)
def test_z2_beside_a_list_of_views_or_missing_beside_a_tensor_is_refused(function):
    z = torch.randn(16, 32)
    with pytest.raises(
        TypeError, match=f"z2 must be omitted .* got z2 of type Tensor: .*{function.__name__}"
    ):
        function([z, z, z], z, num_global=1)
    with pytest.raises(TypeError, match="z2 must be omitted .* got z2 of type int"):
        function([z, z], 8)  # segment_dim given positionally, in z2's place
    with pytest.raises(
        TypeError, match=f"z2 is missing: .*{function.__name__}.* got z1 of type Tensor alone"
    ):
        function(z)


def test_num_global_is_the_cores_to_check():
    views = [torch.randn(16, 32) for _ in range(3)]
    with pytest.raises(ValueError, match="num_global must be given with more than two views"):
        music_loss_func(views, segment_dim=8)
    with pytest.raises(ValueError, match=r"num_global must be from 1 to the number of views \(3\), got 4"):
        music_loss_terms_func(views, segment_dim=8, num_global=4)


def test_num_global_is_keyword_only():
    z = torch.randn(16, 32)
    with pytest.raises(TypeError):
        music_loss_func(z, z, 8, 1.0, 1.0, 1.0, 1.0, "auto", False, None, 2)
