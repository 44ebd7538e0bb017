"""What only the PyTorch backend has: functional ReLUs caught by its TorchFunctionMode, in-place ReLUs
after the tapped layer, nn.Sequential wrappers, torch tensors only. The contract both backends share
is in tests/test_methods_contract.py."""
import numpy as np
import pytest
import torch
from torch import nn

import tiny_nets as nets
import utils


@pytest.fixture
def xt():
    """This file runs on PyTorch only (overrides the root conftest's fixture of both backends)."""
    import utils.torch
    return utils.torch


@pytest.mark.parametrize("kind", nets.TORCH_RELUS)
def test_guided_backprop_by_hand_through_functional_and_in_place_relus(xt, kind):
    """F.relu, F.relu6, torch.relu, Tensor.relu_ and F.hardtanh(x, 0, 6) are no modules: Guided Backprop
    reaches them through a TorchFunctionMode; in-place nn.ReLU / nn.ReLU6 as well."""
    nets.check_guided_by_hand(xt, kind)


def test_grad_cam_on_a_layer_followed_by_an_in_place_relu(xt):
    """The in-place ReLU overwrites the conv's output: the tap must keep the conv's own values."""
    model, x = nets.hand_gap_net(xt, inplace=True)
    raw = dict(normalize=False, upsample=False)
    # the values worked out in test_methods_contract.test_cam_grad_cam_and_saliency_by_hand
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=0, layer="conv", **raw)[0], [[5 / 16, 0], [15 / 16, 0]])
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=1, layer="conv", **raw)[0], [[0, 10 / 16], [0, 0]])
    assert model.relu.inplace
    # and a real network: VGG16's convolutions are each followed by an in-place ReLU
    vgg = xt.load_model("vgg16", pretrained=False, device="cpu")
    x = xt.preprocess(utils.sample_image("rocket"), vgg)
    assert xt.feature_layers(vgg)[-1] == "features.30"
    assert xt.grad_cam(vgg, x, layer="features.28", upsample=False).shape == (1, 14, 14)


def test_a_model_wrapped_with_a_softmax_module_is_explained_on_its_logits(xt):
    model, x = nets.gap_net(xt, [[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]], [[2.0, -1.0], [-1.0, 3.0]], [0.5, -0.5],
                            size=4), torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    wrapped = nn.Sequential(model, nn.Softmax(dim=1))
    np.testing.assert_allclose(xt.grad_cam(wrapped, x, target=[0, 1], layer="0.conv", normalize=False),
                               xt.grad_cam(model, x, target=[0, 1], layer="conv", normalize=False),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(wrapped, x), xt.grad_cam(model, x), atol=1e-5)
    np.testing.assert_allclose(xt.saliency(wrapped, x, normalize=False), xt.saliency(model, x, normalize=False),
                               rtol=1e-5, atol=1e-7)


def test_a_batch_that_is_not_a_torch_tensor_is_refused(xt):
    model, x = nets.hand_gap_net(xt)
    for method in (xt.cam, xt.grad_cam, xt.saliency, xt.smooth_grad, xt.guided_backprop, xt.guided_grad_cam):
        with pytest.raises(TypeError, match="expected a torch.Tensor batch from xt.preprocess, got ndarray"):
            method(model, x.numpy())


def test_the_layers_follow_the_image_size_of_each_call(xt):
    """PyTorch probes a model with one forward pass to find its feature maps; which maps have height and
    width depends on the image size (blocks 11-15 are 7 x 7 at 224 px, 1 x 1 at 32 px). A first call on
    small images must not fix the layers of later calls on large ones."""
    model = xt.efficientnet_lite0(pretrained=False).eval()
    small, large = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 224, 224)
    assert xt.feature_layers(model, small)[-1] == "features.block10"  # the last map larger than 1 x 1 at 32 px
    xt.grad_cam(model, small)
    assert xt.feature_layers(model, large)[-1] == "features.head"
    assert xt.grad_cam(model, large, upsample=False).shape == (1, 7, 7)
    assert xt.cam(model, large, upsample=False).shape == (1, 7, 7)  # the GAP head's own map again
    assert xt.grad_cam(model, small, upsample=False).shape == (1, 2, 2)  # and back
