"""``method_kwargs`` of method=music: defaults and the core's checks, without solo-learn or omegaconf."""

from __future__ import annotations

import pytest

from music_ssl import MUSICLoss, MUSICProjectionHead
from music_ssl.integrations.solo_learn.method_kwargs import ACCEPTED, DEFAULTS, resolve_method_kwargs

DIMS = {"proj_hidden_dim": 64, "proj_output_dim": 64}


def core_error(build) -> Exception:
    """The error music-ssl's own constructor raises for the same bad option."""
    with pytest.raises((TypeError, ValueError)) as error:
        build()
    return error.value


def test_defaults_are_filled_and_given_values_kept():
    resolved = resolve_method_kwargs({**DIMS, "segment_dim": 8, "temperature": 2})
    assert set(resolved) == set(ACCEPTED)
    assert resolved["segment_dim"] == 8 and resolved["temperature"] == 2.0
    assert isinstance(resolved["temperature"], float)
    for key in ("proj_num_layers", "diag_weight", "off_weight", "inv_weight", "implementation"):
        assert resolved[key] == DEFAULTS[key]


def test_default_depth_counts_linear_layers_as_the_head_does():
    resolved = resolve_method_kwargs(DIMS)
    head = MUSICProjectionHead(
        input_dim=16,
        hidden_dim=resolved["proj_hidden_dim"],
        output_dim=resolved["proj_output_dim"],
        num_layers=resolved["proj_num_layers"],
        segment_dim=resolved["segment_dim"],
    )
    linears = [m for m in head.modules() if m.__class__.__name__ == "Linear"]
    # solo-learn's Barlow Twins / VICReg projector shape: two hidden blocks and the output Linear
    assert len(linears) == resolved["proj_num_layers"] == 3


@pytest.mark.parametrize(
    ("key", "value", "build"),
    [
        ("diag_weight", -1.0, lambda: MUSICLoss(diag_weight=-1.0)),
        ("off_weight", float("nan"), lambda: MUSICLoss(off_weight=float("nan"))),
        ("inv_weight", "1", lambda: MUSICLoss(inv_weight="1")),
        ("temperature", 0.0, lambda: MUSICLoss(temperature=0.0)),
        ("segment_dim", 1, lambda: MUSICLoss(segment_dim=1)),
        ("segment_dim", 8.0, lambda: MUSICLoss(segment_dim=8.0)),
        ("implementation", "cuda", lambda: MUSICLoss(implementation="cuda")),
    ],
)
def test_bad_loss_option_fails_with_the_core_message(key, value, build):
    expected = core_error(build)
    with pytest.raises((TypeError, ValueError)) as error:
        resolve_method_kwargs({**DIMS, key: value})
    assert type(error.value) is type(expected)
    assert str(expected) in str(error.value)
    assert "method=music" in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "build"),
    [
        (
            {"proj_output_dim": 60, "segment_dim": 8},
            lambda: MUSICProjectionHead(1, 64, 60, num_layers=3, segment_dim=8),
        ),
        ({"proj_hidden_dim": 0}, lambda: MUSICProjectionHead(1, 0, 64, num_layers=3, segment_dim=32)),
        ({"proj_num_layers": 0}, lambda: MUSICProjectionHead(1, 64, 64, num_layers=0, segment_dim=32)),
    ],
)
def test_bad_projector_size_fails_with_the_head_message(overrides, build):
    expected = core_error(build)
    with pytest.raises((TypeError, ValueError)) as error:
        resolve_method_kwargs({**DIMS, **overrides})
    assert type(error.value) is type(expected)
    assert str(expected) in str(error.value)
    assert "proj_output_dim" in str(error.value)  # names the solo option behind output_dim


def test_single_segment_with_off_weight_is_refused():
    with pytest.raises(ValueError, match="off_weight > 0 needs at least two segments"):
        resolve_method_kwargs({**DIMS, "segment_dim": 64})
    assert resolve_method_kwargs({**DIMS, "segment_dim": 64, "off_weight": 0.0})["off_weight"] == 0.0


@pytest.mark.parametrize("key", ["proj_hidden_dim", "proj_output_dim"])
def test_projector_dims_are_required(key):
    given = {k: v for k, v in DIMS.items() if k != key}
    with pytest.raises(ValueError, match=f"method_kwargs.{key} is required"):
        resolve_method_kwargs(given)


def test_another_methods_key_is_named_in_a_warning_with_the_accepted_ones():
    # solo-learn's barlow.yaml run with method=music keeps Barlow Twins' scale_loss
    with pytest.warns(UserWarning, match=r"\['scale_loss'\] are not options.*segment_dim"):
        resolved = resolve_method_kwargs({**DIMS, "scale_loss": 0.1})
    assert "scale_loss" in resolved and resolved["diag_weight"] == 1.0


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("segmnet_dim", "segment_dim"), ("diag_wieght", "diag_weight"), ("temprature", "temperature")],
)
def test_a_misspelt_option_is_an_error_that_names_it_as_written(typo, meant):
    """A near miss would otherwise train silently with the default (one warning among dozens)."""
    with pytest.raises(
        ValueError, match=rf"method_kwargs.{typo}=16 is not an option.*did you mean method_kwargs.{meant}"
    ):
        resolve_method_kwargs({**DIMS, typo: 16})


def test_old_hidden_layer_count_is_refused_with_its_translation():
    with pytest.raises(ValueError, match="use proj_num_layers=3"):
        resolve_method_kwargs({**DIMS, "proj_num_hidden_layers": 2})


def test_the_loss_functions_take_every_option_with_the_cores_default():
    """Every option of the loss a config holds is a method_kwarg (the method passes them on by name), so
    solo-learn's loss functions must take each, with the core's default: a new option of the loss fails
    here until they do, and a default of theirs that drifts from the core's fails too."""
    import inspect

    from music_ssl import MUSICOptions
    from music_ssl.integrations.solo_learn.losses import music_loss_func, music_loss_terms_func
    from music_ssl.integrations.solo_learn.method_kwargs import LOSS_OPTIONS

    assert {"segment_dim", "temperature", "implementation", "exchange"} <= set(LOSS_OPTIONS)
    for function in (music_loss_func, music_loss_terms_func):
        parameters = inspect.signature(function).parameters
        for name in LOSS_OPTIONS:
            assert name in parameters, (function.__name__, name)
            assert parameters[name].default == getattr(MUSICOptions(), name), (function.__name__, name)
