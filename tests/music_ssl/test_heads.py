import pytest
import torch
from torch import nn

from music_ssl import MUSICLoss, MUSICProjectionHead, segment_codes, segment_probabilities


def test_head_layers_follow_lightly_blocks():
    head = MUSICProjectionHead(input_dim=512, hidden_dim=1024, output_dim=1024, num_layers=3, segment_dim=32)
    kinds = [type(m) for m in head.layers]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 1024), (1024, 1024), (1024, 1024)]
    assert all(m.bias is None for m in linears)  # BatchNorm follows, and the last one has no bias
    assert head.num_segments == 32


def test_head_without_batch_norm_and_single_layer():
    head = MUSICProjectionHead(
        input_dim=8, hidden_dim=16, output_dim=12, num_layers=2, segment_dim=4, batch_norm=False
    )
    assert [type(m) for m in head.layers] == [nn.Linear, nn.ReLU, nn.Linear]
    assert head.layers[0].bias is not None and head.layers[-1].bias is None
    linear = MUSICProjectionHead(input_dim=8, output_dim=12, num_layers=1, segment_dim=4)
    assert [type(m) for m in linear.layers] == [nn.Linear]


def test_head_output_probabilities_and_codes():
    head = MUSICProjectionHead(input_dim=8, hidden_dim=16, output_dim=12, segment_dim=4)
    z = head(torch.randn(5, 8))
    assert z.shape == (5, 12)
    probs = head.segment_probabilities(z, temperature=0.5)
    assert torch.equal(head.attribute_probabilities(z, temperature=0.5), probs)  # the former name
    assert probs.shape == (5, 3, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 3))
    torch.testing.assert_close(probs, torch.softmax(z.reshape(5, 3, 4) / 0.5, -1))
    codes = head.codes(z)
    assert codes.shape == (5, 3) and codes.dtype == torch.long
    assert torch.equal(codes, probs.argmax(-1))


def test_functional_codes():
    z = torch.tensor([[0.0, 3.0, 1.0, 5.0, 0.0, 0.0]])
    assert segment_codes(z, segment_dim=3).tolist() == [[1, 0]]
    assert segment_probabilities(z, segment_dim=2).shape == (1, 3, 2)


def test_the_loss_built_from_a_head_reads_its_segments():
    head = MUSICProjectionHead(input_dim=8, hidden_dim=16, output_dim=64, segment_dim=16)
    loss_fn = head.loss(temperature=0.5)
    assert loss_fn.segment_dim == 16 and loss_fn.temperature == 0.5
    z_a, z_b = head(torch.randn(6, 8)), head(torch.randn(6, 8))
    torch.testing.assert_close(loss_fn(z_a, z_b), MUSICLoss(segment_dim=16, temperature=0.5)(z_a, z_b))
    with pytest.raises(ValueError, match=r"segment_dim=32 differs from this head's segment_dim \(16\)"):
        head.loss(segment_dim=32)


@pytest.mark.parametrize("method", ["codes", "segment_probabilities", "attribute_probabilities"])
def test_the_heads_readers_check_that_they_get_its_output(method):
    """Features instead of projections (a 64-wide backbone output read by a head of another width) used to
    give codes of other segments, silently."""
    head = MUSICProjectionHead(input_dim=8, hidden_dim=16, output_dim=64, segment_dim=16)
    with pytest.raises(ValueError, match=r"z has width 32 .* this head's projections are 64 wide"):
        getattr(head, method)(torch.randn(4, 32))
    with pytest.raises(TypeError, match="z must be a torch.Tensor"):
        getattr(head, method)([[0.0] * 64])
    assert getattr(head, method)(torch.randn(4, 64)).shape[:2] == (4, 4)


def test_the_loss_a_head_builds_checks_its_width():
    """A head with a single segment cannot train with the off-diagonal term: head.loss() says so when built,
    not at the first step."""
    head = MUSICProjectionHead(input_dim=8, hidden_dim=16, output_dim=16, segment_dim=16)
    with pytest.raises(ValueError, match="off_weight > 0 needs at least two segments"):
        head.loss()
    assert head.loss(off_weight=0.0).segment_dim == 16


def test_the_output_keeps_its_former_field_name():
    out = MUSICLoss(segment_dim=4).terms(torch.randn(8, 16), torch.randn(8, 16))
    assert out.invariance is out.inv
    assert out.log_dict()["music_inv"] is out.inv
