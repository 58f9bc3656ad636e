"""Bad input raises ValueError/TypeError naming the argument, the value and what is accepted."""

import pytest
import torch

from music_ssl import (
    MUSICLoss,
    MUSICProjectionHead,
    music_loss,
    music_loss_terms,
    segment_codes,
    segment_probabilities,
)
from tests.music_ssl import implementations_under_test


def _z(n=8, d=64, dtype=torch.float32):
    return torch.randn(n, d, dtype=dtype)


@pytest.mark.parametrize(
    "z_a,z_b,error,match",
    [
        (_z(d=64), _z(d=32), ValueError, r"same shape.*\(8, 64\).*\(8, 32\)"),
        (_z(), _z(n=4), ValueError, "same shape"),
        (torch.randn(8, 4, 16), torch.randn(8, 4, 16), ValueError, r"z_a must be 2-D.*\(8, 4, 16\)"),
        (torch.randn(64), torch.randn(64), ValueError, "z_a must be 2-D"),
        (torch.ones(8, 64, dtype=torch.long), _z(), TypeError, "z_a must have a floating dtype.*int64"),
        (_z(), torch.ones(8, 64, dtype=torch.int32), TypeError, "z_b must have a floating dtype"),
        ([[1.0, 2.0]], _z(), TypeError, "z_a must be a torch.Tensor of shape \\(batch, dim\\), got list"),
        (
            _z(d=60),
            _z(d=60),
            ValueError,
            r"The projection dimension \(60\) must be divisible by segment_dim \(32\)",
        ),
        (_z(n=1), _z(n=1), ValueError, r"batch of at least 2 samples .*, got 1"),
        (_z(d=0), _z(d=0), ValueError, r"z_a and z_b have width 0 \(shape \(8, 0\)\)"),
        (_z(), _z(dtype=torch.float64), ValueError, r"same dtype, got torch.float32 and torch.float64"),
        (_z(dtype=torch.float64), _z(), ValueError, r"same dtype, got torch.float64 and torch.float32"),
    ],
)
@pytest.mark.parametrize("implementation", implementations_under_test.params(interpreted=False, auto=True))
def test_bad_projections(z_a, z_b, error, match, implementation):
    with pytest.raises(error, match=match):
        music_loss(z_a, z_b, implementation=implementation)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"segment_dim": 1}, ValueError, "segment_dim must be >= 2.*got 1"),
        ({"segment_dim": 0}, ValueError, "segment_dim must be >= 2"),
        ({"segment_dim": 8.0}, TypeError, "segment_dim must be an int >= 2, got 8.0"),
        ({"segment_dim": True}, TypeError, "segment_dim must be an int"),
        ({"temperature": 0.0}, ValueError, "temperature must be a positive, finite float, got 0.0"),
        ({"temperature": -1.0}, ValueError, "temperature must be a positive"),
        ({"temperature": float("nan")}, ValueError, "temperature must be a positive"),
        ({"temperature": "1"}, TypeError, "temperature must be a positive float, got '1'"),
        ({"diag_weight": -0.1}, ValueError, "diag_weight must be a non-negative, finite float, got -0.1"),
        ({"off_weight": -1}, ValueError, "off_weight must be a non-negative"),
        ({"inv_weight": float("inf")}, ValueError, "inv_weight must be a non-negative"),
        ({"inv_weight": None}, TypeError, "inv_weight must be a non-negative float, got None"),
        (
            {"implementation": "cuda"},
            ValueError,
            r"implementation must be one of \('auto', 'reference'.*'cuda'",
        ),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        MUSICLoss(**kwargs)
    with pytest.raises(error, match=match):
        music_loss(_z(), _z(), **kwargs)


def test_single_segment_needs_off_weight_zero():
    z = _z(d=32)
    with pytest.raises(ValueError, match="off_weight > 0 needs at least two segments.*off_weight=0.0"):
        music_loss(z, z, segment_dim=32)
    assert torch.isfinite(music_loss(z, z, segment_dim=32, off_weight=0.0))


def test_triton_requested_where_it_cannot_run_is_a_clear_error(monkeypatch):
    from music_ssl.triton_kernel import availability

    # As on a CPU machine where triton was imported without TRITON_INTERPRET=1.
    monkeypatch.setattr(availability, "interpreted", lambda function: False)
    monkeypatch.setattr(availability, "kernels_interpreted", lambda: False)
    with pytest.raises(ValueError, match="implementation='triton' cannot run here.*'chunked'"):
        music_loss(_z(), _z(), implementation="triton")


def test_head_output_dim_not_divisible():
    with pytest.raises(ValueError, match=r"output_dim \(100\) must be divisible by segment_dim \(32\)"):
        MUSICProjectionHead(input_dim=16, hidden_dim=32, output_dim=100, segment_dim=32)
    with pytest.raises(ValueError, match="num_layers must be an int >= 1"):
        MUSICProjectionHead(num_layers=0)
    with pytest.raises(ValueError, match="segment_dim must be >= 2"):
        MUSICProjectionHead(segment_dim=1)


def test_gather_distributed_without_process_group_is_local():
    z_a, z_b = _z(), _z()
    local = MUSICLoss()(z_a, z_b)
    gathered = MUSICLoss(gather_distributed=True)(z_a, z_b)
    torch.testing.assert_close(local, gathered)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"input_dim": 16.0}, "input_dim must be a positive int, got 16.0 of type float"),
        ({"hidden_dim": "32"}, "hidden_dim must be a positive int, got '32'"),
        ({"num_layers": 2.5}, "num_layers must be an int >= 1 .* got 2.5 of type float"),
        ({"batch_norm": "yes"}, "batch_norm must be a bool, got 'yes'"),
        ({"segment_dim": 4.0}, "segment_dim must be an int >= 2"),
    ],
)
def test_head_wrong_types_are_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        MUSICProjectionHead(**kwargs)
    with pytest.raises(ValueError, match="output_dim must be a positive int, got 0"):
        MUSICProjectionHead(output_dim=0)


def test_segment_functions_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="z must be a torch.Tensor of shape \\(batch, dim\\), got list"):
        segment_probabilities([[0.0, 1.0]], segment_dim=2)
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        segment_codes(None, segment_dim=2)
    with pytest.raises(ValueError, match=r"z must be 2-D \(batch, dim\), got shape \(4,\)"):
        segment_codes(torch.zeros(4), segment_dim=2)


@pytest.mark.parametrize("function", [segment_codes, segment_probabilities])
def test_segment_functions_word_the_width_as_the_loss_does(function):
    """The same condition, the same words: a width that is no multiple of segment_dim, or 0."""
    with pytest.raises(ValueError, match=r"The projection dimension \(60\) must be divisible by segment_dim"):
        function(_z(d=60), segment_dim=32)
    with pytest.raises(ValueError, match=r"z has width 0 \(shape \(8, 0\)\); MUSIC needs at least one"):
        function(_z(d=0), segment_dim=32)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gather_distributed": 1}, "gather_distributed must be True, False or .auto., got 1 of type int"),
        ({"implementation": None}, "implementation must be a str, one of .* got None"),
    ],
)
def test_flag_and_choice_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        MUSICLoss(**kwargs)
    with pytest.raises(TypeError, match=match):
        music_loss(_z(), _z(), **kwargs)


def test_return_terms_must_be_a_bool():
    with pytest.raises(TypeError, match="return_terms must be a bool, got 'yes'"):
        music_loss(_z(), _z(), return_terms="yes")


def test_the_core_imports_no_ssl_framework(tmp_path):
    """music_ssl is the core: importing it (all of its public names) loads none of the hosts."""
    import subprocess
    import sys

    code = (
        "import sys, music_ssl\n"
        "hosts = ('lightly', 'solo', 'stable_pretraining', 'lightning', 'pytorch_lightning', 'hydra',\n"
        "         'omegaconf')\n"
        "print([m for m in sys.modules if m.split('.')[0] in hosts])"
    )
    # From an empty folder: the package as installed, not the checkout's.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_public_api():
    """The loss and its terms are paired functions, as torch pairs max_pool2d and max_pool2d_with_indices;
    the generic head stays internal."""
    import typing

    import music_ssl

    assert not hasattr(music_ssl, "ProjectionHead") and "ProjectionHead" not in music_ssl.__all__
    assert typing.get_type_hints(music_loss)["return"] is torch.Tensor
    assert typing.get_type_hints(MUSICLoss.forward)["return"] is torch.Tensor
    assert typing.get_type_hints(music_loss_terms)["return"] is music_ssl.MUSICOutput
    assert typing.get_type_hints(MUSICLoss.terms)["return"] is music_ssl.MUSICOutput


def test_return_terms_still_works_for_a_release_and_names_its_replacement():
    z_a, z_b = _z(), _z()
    loss_fn = MUSICLoss()
    with pytest.warns(FutureWarning, match=r"return_terms=True is deprecated.*MUSICLoss\.terms"):
        out = loss_fn(z_a, z_b, return_terms=True)
    for got, want in zip(out, loss_fn.terms(z_a, z_b), strict=True):
        torch.testing.assert_close(got, want)
    with pytest.warns(FutureWarning, match="call music_loss_terms instead"):
        out = music_loss(z_a, z_b, return_terms=True)
    torch.testing.assert_close(out.loss, music_loss(z_a, z_b))


@pytest.mark.parametrize("implementation", implementations_under_test.params(interpreted=False, auto=True))
@pytest.mark.parametrize(
    ("dtype", "temperature", "match"),
    [
        (torch.float32, 1e-45, r"temperature=1e-45 is below the smallest normal torch.float32 number"),
        (torch.bfloat16, 1e-40, r"overflow for torch.bfloat16 inputs"),
    ],
)
def test_a_temperature_that_overflows_the_compute_dtype(implementation, dtype, temperature, match):
    # (float64's bound lies among Python's subnormal floats, which a process with flush-to-zero reads as 0.)
    with pytest.raises(ValueError, match=match):
        music_loss(_z(dtype=dtype), _z(dtype=dtype), temperature=temperature, implementation=implementation)
    # The smallest accepted temperature for float32 inputs is fine for float64 ones.
    music_loss(
        _z(dtype=torch.float64), _z(dtype=torch.float64), temperature=1e-39, implementation=implementation
    )


def _with(value, where):
    z = _z()
    z[where] = value
    return z


@pytest.mark.parametrize("implementation", implementations_under_test.params(interpreted=False, auto=True))
@pytest.mark.parametrize(
    "z_a",
    [
        _with(float("nan"), (0, 0)),
        _with(float("inf"), (3, 5)),
        _with(float("-inf"), (slice(None), slice(0, 32))),
    ],
    ids=["nan", "inf", "segment_of_minus_inf"],
)
def test_non_finite_logits_propagate_as_in_torch_losses(implementation, z_a):
    """Documented policy: a non-finite logit makes the loss NaN (as in torch.nn.functional's losses), with
    no device synchronisation to look for it; every implementation agrees, none raises."""
    z_a = z_a.requires_grad_()
    loss = music_loss(z_a, _z(), implementation=implementation)
    assert loss.isnan()
    loss.backward()
    assert z_a.grad is not None and not z_a.grad.isfinite().all()


def test_segment_helpers_keep_float64_and_refuse_integers():
    z = torch.randn(4, 16, dtype=torch.float64)
    probabilities = segment_probabilities(z, segment_dim=8)
    assert probabilities.dtype == torch.float64
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(4, 2, dtype=torch.float64))
    assert segment_probabilities(z.half(), segment_dim=8).dtype == torch.float32
    for helper in (segment_probabilities, segment_codes):
        with pytest.raises(TypeError, match="z must have a floating dtype.*got torch.int64"):
            helper(torch.ones(4, 16, dtype=torch.long), segment_dim=8)


@pytest.mark.parametrize(
    ("value", "error"), [("yes", ValueError), ("AUTO", ValueError), (1, TypeError), (None, TypeError)]
)
def test_gather_distributed_takes_true_false_or_auto(value, error):
    with pytest.raises(error, match=r"gather_distributed must be True, False or 'auto', got"):
        MUSICLoss(gather_distributed=value)


def test_auto_gathering_is_the_identity_in_one_process():
    z_a, z_b = _z(), _z()
    torch.testing.assert_close(
        MUSICLoss(gather_distributed="auto")(z_a, z_b), MUSICLoss(gather_distributed=False)(z_a, z_b)
    )


@pytest.mark.parametrize("implementation", implementations_under_test.params(interpreted=False, auto=True))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_a_temperature_at_which_the_logits_overflow_still_gives_a_finite_loss(implementation, dtype):
    """An accepted temperature (above the smallest normal number) with logits of ordinary size: z /
    temperature overflows, which gave inf - inf = NaN; the loss and its gradients stay finite, and the
    codes are the hard codes of the logits."""
    temperature = 2 * torch.finfo(torch.float32 if dtype != torch.float64 else dtype).tiny
    z_a = (10 * _z(dtype=torch.float32)).to(dtype).requires_grad_()
    z_b = (10 * _z(dtype=torch.float32)).to(dtype).requires_grad_()
    out = music_loss_terms(z_a, z_b, segment_dim=16, temperature=temperature, implementation=implementation)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(z_a.grad).all() and torch.isfinite(z_b.grad).all()
    torch.testing.assert_close(out.confidence, torch.ones_like(out.confidence))  # hard codes
    probabilities = segment_probabilities(z_a.detach(), 16, temperature)
    assert torch.isfinite(probabilities).all()
    assert torch.equal(probabilities.argmax(-1), segment_codes(z_a.detach(), 16))


def test_a_loss_takes_its_options_as_one_value():
    from music_ssl import MUSICOptions

    options = MUSICOptions(segment_dim=16, temperature=0.5, implementation="reference")
    loss_fn = MUSICLoss(options)
    assert loss_fn.options is options and loss_fn.segment_dim == 16 and loss_fn.temperature == 0.5
    z_a, z_b = _z(), _z()
    torch.testing.assert_close(
        loss_fn(z_a, z_b), MUSICLoss(segment_dim=16, temperature=0.5, implementation="reference")(z_a, z_b)
    )
    with pytest.raises(TypeError, match="either a MUSICOptions or the options one by one"):
        MUSICLoss(options, temperature=1.0)


def test_an_option_changed_on_a_built_loss_is_checked_and_used():
    """A temperature schedule sets the temperature every step; a bad value fails as at construction."""
    z_a, z_b = _z(), _z()
    loss_fn = MUSICLoss(segment_dim=16)
    loss_fn.temperature = 0.5
    assert loss_fn.temperature == 0.5 and loss_fn.options.temperature == 0.5
    torch.testing.assert_close(loss_fn(z_a, z_b), MUSICLoss(segment_dim=16, temperature=0.5)(z_a, z_b))
    with pytest.raises(ValueError, match="temperature must be a positive, finite float, got 0.0"):
        loss_fn.temperature = 0.0
    with pytest.raises(TypeError, match="segment_dim must be an int >= 2"):
        loss_fn.segment_dim = 8.0
    assert loss_fn.temperature == 0.5 and loss_fn.segment_dim == 16  # a refused value changes nothing
    assert "temperature=0.5" in repr(loss_fn)


def test_a_process_group_that_is_not_one_is_a_clear_error():
    with pytest.raises(TypeError, match="process_group must be None .* or a torch.distributed.ProcessGroup"):
        MUSICLoss(process_group=[0, 1])
    with pytest.raises(TypeError, match="process_group must be None"):
        music_loss(_z(), _z(), process_group="world")


def test_a_group_this_rank_is_not_in_is_named_as_such():
    import torch.distributed as dist

    with pytest.raises(
        ValueError, match="NON_GROUP_MEMBER: new_group returned it because this process is not"
    ):
        MUSICLoss(process_group=dist.GroupMember.NON_GROUP_MEMBER)


def test_a_loss_with_a_process_group_can_be_deep_copied(tmp_path):
    """A copy of a model that holds the loss (an EMA teacher, AveragedModel) shares the group."""
    import subprocess
    import sys

    code = (
        "import copy, os, torch.distributed as dist\n"
        "from music_ssl import MUSICLoss\n"
        "dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)\n"
        "group = dist.new_group([0])\n"
        "copied = copy.deepcopy(MUSICLoss(segment_dim=8, process_group=group))\n"
        "assert copied.process_group is group and copied.segment_dim == 8\n"
        "print('ok', flush=True)\n"
        "os._exit(0)\n"
    )
    # From an empty folder: the package as installed, not the checkout's.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_num_global_given_positionally_after_a_list_of_views_is_named_in_the_error():
    views = [torch.randn(4, 8) for _ in range(3)]
    with pytest.raises(TypeError, match=r"loss\(views, num_global=2\)"):
        MUSICLoss(segment_dim=4)(views, 2)
