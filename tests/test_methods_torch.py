"""The PyTorch explanation methods: hand-computed answers, the papers' identities, hygiene, bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import utils
import utils.torch as xt

# ---------------------------------------------------------------------------------------------
# Tiny hand-built nets whose answers are worked out by hand.


class TinyGap(nn.Module):
    """conv 1x1 (2 channels: +x and -x of the input's first channel) -> ReLU -> GAP -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0
            self.conv.weight[1, 0] = -1.0
            self.fc.weight.copy_(torch.tensor([[2.0, -1.0], [-1.0, 3.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, -0.5]))

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def tiny_input():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    x[0, 1] = 5.0  # ignored by the conv: no gradient may reach it
    return x


def test_cam_and_grad_cam_by_hand():
    model, x = TinyGap(), tiny_input()
    f0 = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # relu(x)
    f1 = torch.tensor([[0.0, 2.0], [0.0, 0.0]])  # relu(-x)
    expected_cam = 2 * f0 - 1 * f1  # class 0: w = (2, -1)
    got = xt.cam(model, x, target=0, layer="relu", normalize=False, upsample=False)
    np.testing.assert_allclose(got[0], expected_cam.numpy())
    # Grad-CAM on a GAP -> linear head: alpha_k = w_k / Z, so the map is ReLU(CAM) / Z with Z = 4.
    got = xt.grad_cam(model, x, target=0, layer="relu", normalize=False, upsample=False)
    np.testing.assert_allclose(got[0], np.maximum(expected_cam.numpy(), 0) / 4, rtol=1e-6)
    # class 1: w = (-1, 3): CAM = -f0 + 3 f1
    got = xt.cam(model, x, target=1, layer="relu", normalize=False, upsample=False)
    np.testing.assert_allclose(got[0], (-f0 + 3 * f1).numpy())


def test_saliency_of_a_linear_model_is_its_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    x = torch.randn(2, 3, 5, 5)
    jacobian = torch.autograd.functional.jacobian(lambda v: model(v)[:, 2].sum(), x)
    expected = jacobian.abs().amax(dim=1).numpy()
    np.testing.assert_allclose(xt.saliency(model, x, target=2, normalize=False), expected, rtol=1e-5, atol=1e-7)
    # and SmoothGrad of a linear model is the same for any noise level (the gradient is constant)
    np.testing.assert_allclose(xt.smooth_grad(model, x, target=2, n=4, sigma=0.5, seed=0, normalize=False),
                               expected, rtol=1e-5, atol=1e-7)


class OneRelu(nn.Module):
    """y_c = sum_i v_ci * act(u_i * x_i) over the 4 pixels of channel 0; act is ReLU or ReLU6."""

    def __init__(self, act):
        super().__init__()
        self.u = nn.Parameter(torch.tensor([1.0, 1.0, 1.0, 1.0]))
        self.v = nn.Parameter(torch.tensor([[1.0, -1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]]))
        self.act = act

    def forward(self, x):
        h = self.act(x[:, 0].flatten(1) * self.u)
        return h @ self.v.T


@pytest.mark.parametrize("act, upper", [(nn.ReLU(), None), (nn.ReLU6(), 6.0), (F.relu, None), (F.relu6, 6.0)])
def test_guided_backprop_by_hand(act, upper):
    model = OneRelu(act)
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[2.0, 3.0], [-1.0, 7.0]])
    got = xt.guided_backprop(model, x, target=0, normalize=False)  # (1, 2, 2, 3)
    # plain gradient: v_0i * [x_i > 0] (* [x_i < 6]); guided: also zero where the upstream v_0i < 0
    expected = np.array([[1.0, 0.0], [0.0, 0.0 if upper else 1.0]])
    np.testing.assert_array_equal(got[0, :, :, 0], expected)
    assert not got[0, :, :, 1:].any()
    plain = xt.saliency(model, x, target=0, normalize=False)[0]
    assert plain[0, 1] == 1.0  # |-1|: the vanilla gradient keeps the negative path that guided drops


def test_guided_backprop_handles_every_image_of_the_batch():
    model = OneRelu(nn.ReLU())
    x = torch.zeros(3, 3, 2, 2)
    x[:, 0] = torch.tensor([[[2.0, 3.0], [-1.0, 7.0]], [[-2.0, 3.0], [1.0, 7.0]], [[2.0, -3.0], [1.0, -7.0]]])
    got = xt.guided_backprop(model, x, target=[0, 1, 0], normalize=False)[..., 0]
    np.testing.assert_array_equal(got[0], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(got[1], [[0, 1], [0, 0]])
    np.testing.assert_array_equal(got[2], [[1, 0], [1, 0]])


# ---------------------------------------------------------------------------------------------
# The embedded model: the papers' identities.


@pytest.fixture(scope="module")
def embedded():
    model = xt.load_model()
    x = xt.preprocess([utils.sample_image("chelsea"), utils.cat_and_coffee()], model)
    return model, x


def test_cam_mean_plus_bias_is_the_logit_for_every_class(embedded, record_property):
    model, x = embedded
    with torch.no_grad():
        features = model.features(x)
        logits = model(x)
        cams = torch.einsum("ck,bkhw->bchw", model.classifier.weight, features)  # all 1000 maps at once
    ours = xt.cam(model, x, target=[285, 967], normalize=False, upsample=False)
    np.testing.assert_allclose(ours, cams[[0, 1], [285, 967]].numpy(), rtol=1e-5, atol=1e-5)
    error = (cams.mean(dim=(2, 3)) + model.classifier.bias - logits).abs().max().item()
    record_property("figure", f"CAM torch: max |mean(M_c) + b_c - logit_c| over 1000 classes x 2 images = {error:.1e}")
    assert error < 1e-4


def test_grad_cam_is_cam_up_to_a_positive_factor(embedded):
    model, x = embedded
    for target in (285, 967):
        raw_cam = xt.cam(model, x, target=target, normalize=False, upsample=False)
        raw_grad_cam = xt.grad_cam(model, x, target=target, normalize=False, upsample=False)
        np.testing.assert_allclose(raw_grad_cam * 49, np.maximum(raw_cam, 0), atol=1e-4 * np.abs(raw_cam).max())


def test_each_class_map_falls_on_its_half_of_the_composite(embedded):
    model, x = embedded
    composite = x[1:]
    for method in (xt.cam, xt.grad_cam):
        cat, espresso = method(model, composite, target=285)[0], method(model, composite, target=967)[0]
        assert utils.mass_fraction(cat, (0, 0, 112, 224)) > 0.7
        assert utils.mass_fraction(espresso, (112, 0, 224, 224)) > 0.7


def test_output_contracts(embedded):
    model, x = embedded
    for method in (xt.cam, xt.grad_cam, xt.saliency):
        maps = method(model, x)
        assert maps.shape == (2, 224, 224) and maps.dtype == np.float32
        assert maps.min() == 0 and maps.max() == 1
    assert xt.cam(model, x, upsample=False).shape == (2, 7, 7)
    assert xt.grad_cam(model, x, layer="features.block4", upsample=False).shape == (2, 28, 28)
    for method in (xt.guided_backprop, xt.guided_grad_cam):
        maps = method(model, x)
        assert maps.shape == (2, 224, 224, 3) and maps.dtype == np.float32 and 0 <= maps.min() <= maps.max() <= 1
    assert xt.smooth_grad(model, x, n=2, seed=0).shape == (2, 224, 224)


def test_targets_none_int_and_sequence_agree(embedded):
    model, x = embedded
    top1 = xt.predict(model, x, top=1).indices[:, 0]
    np.testing.assert_array_equal(xt.grad_cam(model, x), xt.grad_cam(model, x, target=top1.tolist()))
    np.testing.assert_array_equal(xt.cam(model, x, target=285), xt.cam(model, x, target=[285, 285]))


def test_smooth_grad_limits_and_chunking(embedded):
    model, x = embedded
    np.testing.assert_allclose(xt.smooth_grad(model, x, n=3, sigma=0.0), xt.saliency(model, x), atol=1e-6)
    one_by_one = xt.smooth_grad(model, x, n=3, seed=1, batch_size=1, normalize=False)
    all_at_once = xt.smooth_grad(model, x, n=3, seed=1, batch_size=None, normalize=False)
    np.testing.assert_allclose(one_by_one, all_at_once, rtol=1e-4, atol=1e-6 * all_at_once.max())
    squared = xt.smooth_grad(model, x, n=3, seed=1, squared=True, normalize=False)
    assert (squared >= 0).all() and not np.allclose(squared / squared.max(), all_at_once / all_at_once.max())
    assert not np.array_equal(xt.smooth_grad(model, x, n=3, seed=1), xt.smooth_grad(model, x, n=3, seed=2))


def test_guided_grad_cam_is_guided_backprop_times_grad_cam(embedded):
    model, x = embedded
    gb = xt.guided_backprop(model, x, target=285, normalize=False)
    coarse = xt.grad_cam(model, x, target=285, normalize=False)
    np.testing.assert_allclose(xt.guided_grad_cam(model, x, target=285, normalize=False), gb * coarse[..., None],
                               rtol=1e-5, atol=1e-9)


def test_pre_softmax_score_when_the_model_ends_in_softmax(embedded):
    model, x = embedded
    with_softmax = nn.Sequential(model, nn.Softmax(dim=1))
    np.testing.assert_allclose(xt.grad_cam(with_softmax, x, layer="0.features.head"),
                               xt.grad_cam(model, x), atol=1e-5)
    np.testing.assert_allclose(xt.saliency(with_softmax, x), xt.saliency(model, x), atol=1e-5)


def test_grad_cam_on_a_layer_followed_by_an_inplace_relu():
    model = xt.load_model("vgg16", pretrained=False)
    x = xt.preprocess(utils.sample_image("rocket"), model)
    assert xt.feature_layers(model)[-1] == "features.30"
    assert xt.grad_cam(model, x, layer="features.28", upsample=False).shape == (1, 14, 14)


# ---------------------------------------------------------------------------------------------
# Hygiene: the model is left exactly as it was, also after a call that raised.


def model_state(model):
    return {
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        "training": [m.training for m in model.modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "types": [type(m) for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
    }


def test_model_is_left_as_it_was():
    model = xt.load_model("resnet50", pretrained=False)  # in-place ReLUs, a module reused in every block
    model.train()
    model.layer4[2].bn1.eval()  # a mixed state to restore
    x = xt.preprocess(utils.sample_image("coffee"), model)
    with torch.no_grad():
        model.eval()
        reference = model(x)
        model.train()
        model.layer4[2].bn1.eval()
    before = model_state(model)
    calls = [lambda: xt.cam(model, x), lambda: xt.grad_cam(model, x), lambda: xt.saliency(model, x),
             lambda: xt.smooth_grad(model, x, n=2), lambda: xt.guided_backprop(model, x),
             lambda: xt.guided_grad_cam(model, x, layer="layer3"),
             lambda: xt.grad_cam(model, x, layer="fc"), lambda: xt.grad_cam(model, x, target=1000),
             lambda: xt.guided_grad_cam(model, x, target=[1, 2])]
    for call in calls:
        try:
            call()
        except ValueError:
            pass
        assert model_state(model) == before
    assert torch.is_grad_enabled()  # grad mode restored to the default
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), reference)


def test_shared_relu_module_is_refused_as_a_layer():
    model = xt.load_model("resnet50", pretrained=False)
    x = xt.preprocess(utils.sample_image("coffee"), model)
    with pytest.raises(ValueError, match="runs more than once in one forward pass"):
        xt.grad_cam(model, x, layer="layer4.0.relu")
    assert all(not m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_bad_input_gets_clear_errors(embedded):
    model, x = embedded
    with pytest.raises(ValueError, match="no layer named 'head'.*features.block15.*features.head"):
        xt.grad_cam(model, x, layer="head")
    with pytest.raises(ValueError, match="'classifier' outputs shape \\(2, 1000\\), not a convolutional feature map"):
        xt.grad_cam(model, x, layer="classifier")
    with pytest.raises(ValueError, match="target class 1000 is out of range"):
        xt.saliency(model, x, target=1000)
    with pytest.raises(ValueError, match="target has 3 classes for a batch of 2"):
        xt.smooth_grad(model, x, target=[1, 2, 3])
    with pytest.raises(ValueError, match="empty batch"):
        xt.grad_cam(model, x[:0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        xt.cam(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="shaped \\(B, C, H, W\\)"):
        xt.guided_backprop(model, x[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        xt.grad_cam(model, x.numpy())
    with pytest.raises(ValueError, match="n \\(the number of noisy samples\\)"):
        xt.smooth_grad(model, x, n=0)
    for head in ("gmp", "flatten"):
        small = xt.small_cnn(head)
        with pytest.raises(ValueError, match="use grad_cam"):
            xt.cam(small, xt.preprocess(utils.make_shapes(2).images, small))


def test_a_constant_map_normalises_to_zeros():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(1.0)
    maps = xt.grad_cam(model, torch.rand(2, 3, 4, 4), target=0)
    assert np.isfinite(maps).all() and not maps.any()


# ---------------------------------------------------------------------------------------------
# strict=False: the CAM formula on a head that is not GAP -> linear (the CAM paper's GMP networks)


def small_gmp_net():
    torch.manual_seed(3)
    model = xt.small_cnn("gmp", num_classes=3, input_size=16, width=4, depth=2, device="cpu")
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so the test sees them
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_cam_strict_false_is_the_formula_on_a_gmp_head():
    model, x = small_gmp_net(), torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        features = model.features(x)  # the last feature map, (B, K, h, w)
        logits = model(x)
        expected = torch.einsum("ck,bkhw->bchw", model.classifier.weight, features)  # M_c = sum_k w_k^c f_k
        max_pooled = model.classifier(features.amax(dim=(2, 3)))
        bias = model.classifier.bias.numpy()
    got = xt.cam(model, x, target=[0, 2], normalize=False, upsample=False, strict=False)
    np.testing.assert_allclose(got, expected[[0, 1], [0, 2]].numpy(), rtol=1e-5, atol=1e-6)
    # GMP: the logit is the linear layer applied to the spatial max, not the mean of the map
    np.testing.assert_allclose(logits.numpy(), max_pooled.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(got.mean(axis=(1, 2)) + bias[[0, 2]], logits[[0, 1], [0, 2]].numpy(), atol=1e-2)
    top1 = xt.cam(model, x, normalize=False, upsample=False, strict=False)  # target None: each image's top-1
    np.testing.assert_allclose(top1, expected[[0, 1], logits.argmax(1)].numpy(), rtol=1e-5, atol=1e-6)


def test_cam_strict_true_still_refuses_a_gmp_head():
    model, x = small_gmp_net(), torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="mean_xy.*use grad_cam"):
        xt.cam(model, x)
    with pytest.raises(ValueError, match="use grad_cam"):
        xt.cam(model, x, strict=True)


def test_cam_strict_false_changes_nothing_on_a_gap_head():
    model, x = TinyGap(), tiny_input()
    np.testing.assert_array_equal(xt.cam(model, x, target=1, layer="relu", strict=False),
                                  xt.cam(model, x, target=1, layer="relu"))


def test_cam_strict_false_still_needs_one_weight_per_channel():
    torch.manual_seed(0)
    model = xt.small_cnn("flatten", num_classes=3, input_size=16, width=4, depth=2, device="cpu").eval()
    with pytest.raises(ValueError, match="channels.*use grad_cam"):  # 8 channels, a linear layer of 128 inputs
        xt.cam(model, torch.randn(1, 3, 16, 16), strict=False)
