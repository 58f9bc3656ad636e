import pytest
import torch

from music_ssl.integrations.backbones import SmallCNN, resnet18_cifar


@pytest.mark.parametrize(
    ("kwargs", "pixels", "features", "side"),
    [({}, 28, 256, 4), ({"in_channels": 3, "widths": (8, 16), "strides": (2, 2)}, 32, 16, 8)],
)
def test_small_cnn_gives_out_dim_features_from_its_last_stage(kwargs, pixels, features, side):
    model = SmallCNN(**kwargs).eval()
    x = torch.randn(2, kwargs.get("in_channels", 1), pixels, pixels)
    assert model.out_dim == features
    assert model.features(x).shape == (2, features, side, side)
    torch.testing.assert_close(model(x), model.features(x).mean(dim=(2, 3)))


def test_small_cnn_refuses_a_stride_per_width_mismatch():
    expected = r"widths=\(8, 16\) and strides=\(2,\): expected one stride per width"
    with pytest.raises(ValueError, match=expected):
        SmallCNN(widths=(8, 16), strides=(2,))


def test_resnet18_cifar_keeps_the_resolution_in_its_stem():
    model = resnet18_cifar(in_channels=1).eval()
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, model.out_dim) == (2, 512)
