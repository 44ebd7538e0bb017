"""Both backends: the same public names, the embedded model, the zoo models, the small nets, inputs."""
import urllib.error

import numpy as np
import pytest
import torch

import utils
import utils.tensorflow as xtf
import utils.torch as xtt
from utils import models as spec

PHOTOS = ["chelsea", "coffee"]


def test_backends_share_public_names():
    assert xtt.__all__ == xtf.__all__
    for name in xtt.__all__:
        assert hasattr(xtt, name) and hasattr(xtf, name), name


def to_numpy(x):
    """Either framework's tensor as numpy, channels last."""
    array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return array.transpose(0, 2, 3, 1) if hasattr(x, "detach") and array.ndim == 4 else array


def logits(xt, model, x):
    return model(x).detach().cpu().numpy() if xt is xtt else model(x, training=False).numpy()


@pytest.fixture(scope="module")
def embedded(embedded_models):
    """The embedded model in both frameworks and the sample photos (plus the composite)."""
    images = [utils.sample_image(name) for name in utils.SAMPLE_NAMES] + [utils.cat_and_coffee()]
    return {xt: (model, images) for xt, model in embedded_models.items()}


def test_preprocess_is_identical_in_both_frameworks(embedded):
    (_, images) = embedded[xtt]
    x_torch, x_tf = xtt.preprocess(images), xtf.preprocess(images)
    assert tuple(x_torch.shape) == (len(images), 3, 224, 224)
    assert tuple(x_tf.shape) == (len(images), 224, 224, 3)
    np.testing.assert_array_equal(to_numpy(x_torch), to_numpy(x_tf))
    # EfficientNet-Lite's normalisation: (x - 127) / 128 maps 0..255 into [-0.993, 1.0]
    assert -127 / 128 <= float(x_tf.numpy().min()) < -0.9 and 0.9 < float(x_tf.numpy().max()) <= 1.0


def test_embedded_model_parity(embedded, record_property):
    """Same file, two frameworks: logits within 1e-3 of their range, identical top-5 classes."""
    results = {}
    for xt, (model, images) in embedded.items():
        x = xt.preprocess(images, model)
        results[xt] = (logits(xt, model, x), xt.predict(model, x, top=5))
    (torch_logits, torch_top), (tf_logits, tf_top) = results[xtt], results[xtf]
    assert torch_logits.shape == tf_logits.shape == (5, 1000)
    relative = np.abs(torch_logits - tf_logits).max(axis=1) / np.ptp(torch_logits, axis=1)
    record_property("figure", f"parity efficientnet_lite0 torch vs keras: max |dlogit|/range = "
                              f"{relative.max():.2e} over {len(relative)} images; top-5 identical: "
                              f"{np.array_equal(torch_top.indices, tf_top.indices)}")
    assert relative.max() < 1e-3
    np.testing.assert_array_equal(torch_top.indices, tf_top.indices)
    np.testing.assert_allclose(torch_top.probs, tf_top.probs, atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_embedded_model_classifies_the_photos(embedded, backend):
    xt = xtt if backend == "torch" else xtf
    model, _ = embedded[xt]
    top = xt.predict(model, xt.preprocess([utils.sample_image(name) for name in PHOTOS], model), top=5)
    assert [names[0] for names in top.names] == ["Egyptian cat", "espresso"]
    assert top.indices.shape == top.probs.shape == (2, 5)
    assert np.all(np.diff(top.probs, axis=1) <= 0) and np.all(top.probs.sum(axis=1) <= 1 + 1e-6)
    assert top.indices[0, 0] == utils.class_index("Egyptian cat")


def test_embedded_model_architecture(embedded):
    torch_model, _ = embedded[xtt]
    keras_model, _ = embedded[xtf]
    torch_params = sum(p.numel() for p in torch_model.parameters())
    keras_trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
    assert torch_params == keras_trainable == 4_652_008  # every tensor of the package's file, but BN stats
    torch_features = torch_model.features(xtt.preprocess(utils.sample_image("coffee")))
    assert tuple(torch_features.shape) == (1, 1280, 7, 7)
    assert keras_model.get_layer("head_relu").output.shape[-1] == 1280
    assert not torch_model.training


def test_predict_rejects_bad_top(xt):
    model = xt.small_cnn("gap", num_classes=3)
    x = xt.preprocess(utils.make_shapes(2, seed=1).images, model)
    with pytest.raises(ValueError, match="top must be between 1 and the number of classes"):
        xt.predict(model, x, top=4)


def test_load_model_rejects_unknown_names(xt):
    with pytest.raises(ValueError, match="unknown model 'alexnet'.*efficientnet_lite0.*vgg16.*resnet50"):
        xt.load_model("alexnet")


def test_zoo_models_offline_name_the_embedded_one(xt, monkeypatch):
    """No network: a clear error that points to the embedded model (download forced to fail)."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    if xt is xtt:
        import torch.hub
        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    else:
        import keras
        monkeypatch.setattr(keras.utils, "get_file", no_network)
        import keras.src.applications.resnet as resnet
        monkeypatch.setattr(resnet.file_utils, "get_file", no_network)
    with pytest.raises(RuntimeError, match="(?s)could not fetch the pretrained resnet50.*load_model\\('efficientnet_lite0'\\)"):
        xt.load_model("resnet50", pretrained=True)


@pytest.mark.parametrize("name, torch_params, keras_params", [("vgg16", 138_357_544, 138_357_544),
                                                              ("resnet50", 25_557_032, 25_636_712)])
def test_zoo_architectures_with_random_weights(name, torch_params, keras_params):
    torch_model, keras_model = xtt.load_model(name, pretrained=False), xtf.load_model(name, pretrained=False)
    assert sum(p.numel() for p in torch_model.parameters()) == torch_params
    assert keras_model.count_params() == keras_params
    image = utils.sample_image("rocket")
    assert tuple(torch_model(xtt.preprocess(image, torch_model)).shape) == (1, 1000)
    assert keras_model.output_shape == (None, 1000)
    assert torch_model.preprocessing == spec.TORCHVISION_INPUT and keras_model.preprocessing == spec.KERAS_CAFFE_INPUT
    assert keras_model.layers[-1].activation.__name__ == "linear"  # logits, not softmax


@pytest.mark.parametrize("head", spec.SMALL_CNN_HEADS)
def test_small_cnn_same_architecture_in_both(head):
    torch_model = xtt.small_cnn(head, num_classes=5, depth=3)
    keras_model = xtf.small_cnn(head, num_classes=5, depth=3)
    torch_total = sum(p.numel() for p in torch_model.parameters()) + sum(
        b.numel() for name, b in torch_model.named_buffers() if not name.endswith("num_batches_tracked"))
    assert torch_total == keras_model.count_params()
    batch = utils.make_shapes(3, seed=2).images
    assert tuple(torch_model(xtt.preprocess(batch, torch_model)).shape) == (3, 5)
    assert tuple(keras_model(xtf.preprocess(batch, keras_model)).shape) == (3, 5)
    assert tuple(torch_model.features(xtt.preprocess(batch, torch_model)).shape[2:]) == (8, 8)
    assert tuple(keras_model.get_layer("last_relu").output.shape[1:3]) == (8, 8)


def test_small_cnn_rejects_bad_arguments(xt):
    with pytest.raises(ValueError, match="unknown head 'avg'"):
        xt.small_cnn("avg")
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth"):
        xt.small_cnn("gap", input_size=60, depth=3)


def test_seed_everything_makes_initialisation_repeatable(xt):
    def first_kernel(seed):
        xt.seed_everything(seed)
        model = xt.small_cnn("gap", num_classes=3, width=8)
        if xt is xtt:
            return model.features.conv1.conv.weight.detach().cpu().numpy()
        return model.get_layer("conv1_conv").kernel.numpy()

    assert np.array_equal(first_kernel(7), first_kernel(7))
    assert not np.array_equal(first_kernel(7), first_kernel(8))


def test_preprocess_reports_bad_images(xt):
    with pytest.raises(TypeError, match="uint8"):
        xt.preprocess(np.zeros((32, 32, 3), np.float64))
    with pytest.raises(ValueError, match="empty batch"):
        xt.preprocess([])
    gray = xt.preprocess(utils.as_rgb_uint8(np.full((20, 30), 200, np.uint8)))
    assert tuple(gray.shape)[0] == 1


def tf32_enabled(xt) -> dict:
    """The framework's TF32 switches (they only act on Ampere and newer GPUs, but can be read anywhere)."""
    if xt is xtt:
        return {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
    import tensorflow as tf

    return {"tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled()}


def test_seed_everything_turns_tf32_off(xt):
    """TF32 keeps 10 of float32's 23 mantissa bits: the notebooks' identities (to 1e-5) need full precision."""
    if xt is xtt:
        torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
    else:
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(True)  # TensorFlow's default
    assert any(tf32_enabled(xt).values())
    xt.seed_everything(0)
    assert not any(tf32_enabled(xt).values()), tf32_enabled(xt)
