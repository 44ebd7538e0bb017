"""The explanation methods in PyTorch: CAM, Grad-CAM, saliency, SmoothGrad, Guided Backprop, Guided Grad-CAM.

Every method takes a preprocessed batch x (B, 3, H, W) on the model's device and returns numpy
arrays (conventions in utils/explain.py). The maths stays on the device and batched. The model is
left as it was: hooks are removed and training flags restored in `finally` blocks, activations
are never swapped (Guided Backprop intercepts relu calls with a TorchFunctionMode instead).
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import explain
from .core import inference as _inference

# ---------------------------------------------------------------------------------------------
# Plumbing: eval mode for the call, the feature-map layers, a tap on one layer's output.


def _check_input(model: nn.Module, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch from xt.preprocess, got {type(x).__name__}")
    explain.check_batch(tuple(x.shape), channels_last=False)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise ValueError(f"the batch is on {x.device} but the model on {parameter.device}; "
                         "make the batch with xt.preprocess(images, model)")
    if not torch.isfinite(x).all():
        raise explain.non_finite_input()


class _Layers:
    """What one probing forward pass tells about a model: its feature-map layers and its last linear layer."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        modules = dict(model.named_modules())
        produced: dict[int, list[str]] = {}  # id(output tensor) -> names of the modules that returned it
        order: list[int] = []
        linears: list[str] = []
        returned_by: dict[int, nn.Module] = {}
        alive: list = []  # holds every output, so no id() is reused during the probe

        def record(name):
            def hook(module, inputs, output):
                alive.append(output)
                returned_by.setdefault(id(output), module)
                if isinstance(module, nn.Linear):
                    linears.append(name)
                if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                    if id(output) not in produced:
                        produced[id(output)] = []
                        order.append(id(output))
                    produced[id(output)].append(name)
            return hook

        handles = [module.register_forward_hook(record(name)) for name, module in modules.items() if name]
        try:
            with torch.no_grad():
                output = model(x[:1])
        finally:
            for handle in handles:
                handle.remove()
        last = returned_by.get(id(output))
        # A model that ends in nn.Softmax: the methods take the softmax's input, the logits.
        self.final_softmax = last if isinstance(last, (nn.Softmax, nn.LogSoftmax)) else None
        self.feature_layers = _main_feature_layers([produced[key] for key in order], modules)
        self.last_linear = linears[-1] if linears else None
        self.num_classes = output.shape[1]
        self.signature = _signature(model)


def _main_feature_layers(maps: list[list[str]], modules: dict[str, nn.Module]) -> list[str]:
    """The feature maps worth choosing from, one name each, in forward order.

    Keeps the maps from the first convolution on, except those only a pooling layer returns
    (VGG's avgpool is not a conv feature map). Names them at the shallowest module depth that
    offers a choice: EfficientNet's features.stem, features.block0, ..., features.head;
    ResNet's conv1, layer1, ..., layer4.
    """
    def has_conv(name):
        return any(isinstance(m, nn.modules.conv._ConvNd) for m in modules[name].modules())

    first_conv = next((i for i, names in enumerate(maps) if any(has_conv(n) for n in names)), len(maps))
    kept = [names for names in maps[first_conv:]
            if not all(isinstance(modules[n], nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AdaptiveAvgPoolNd
                                  | nn.modules.pooling._AvgPoolNd | nn.modules.pooling._AdaptiveMaxPoolNd)
                       for n in names)]
    deepest = max((n.count(".") for names in kept for n in names), default=0)
    for depth in range(deepest + 1):
        named = [next((n for n in names if n.count(".") == depth), None) for names in kept]
        if sum(n is not None for n in named) > 1 or depth == deepest:
            return [n for n in named if n is not None]
    return []


def _signature(model: nn.Module) -> tuple:
    return tuple(id(module) for module in model.modules())


_probes: "weakref.WeakKeyDictionary[nn.Module, _Layers]" = weakref.WeakKeyDictionary()


def _layers(model: nn.Module, x: torch.Tensor) -> _Layers:
    probe = _probes.get(model)
    if probe is None or probe.signature != _signature(model):
        probe = _probes[model] = _Layers(model, x)
    return probe


def feature_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """Names of the convolutional feature maps (B, C, H, W) of `model`, in forward order."""
    if x is None:
        x = torch.zeros(1, 3, 224, 224, device=next(model.parameters()).device)
    with _inference(model):
        return list(_layers(model, x).feature_layers)


def _resolve_layer(model: nn.Module, x: torch.Tensor, layer: str | None) -> tuple[str, nn.Module]:
    probe = _layers(model, x)
    if layer is None:
        if not probe.feature_layers:
            raise ValueError("the model has no convolutional feature map; these methods explain CNNs")
        layer = probe.feature_layers[-1]
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise explain.unknown_layer(layer, probe.feature_layers)
    return layer, modules[layer]


@contextmanager
def _tap(model: nn.Module, name: str, module: nn.Module, x: torch.Tensor, grad: bool):
    """Record the output of `module` during the forward passes inside the block.

    With grad=True the recorded output is a fresh leaf that requires grad: the forward runs under
    no_grad and the graph starts at the layer, so the backward stops there too (Grad-CAM's floor).
    """
    taps: list[torch.Tensor] = []

    def hook(mod, inputs, output):
        if not (isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1):
            raise explain.not_a_feature_map(name, getattr(output, "shape", ()), _layers(model, x).feature_layers)
        if taps:
            raise explain.layer_called_more_than_once(name, len(taps) + 1)
        if grad:
            torch.set_grad_enabled(True)  # undone when the caller's no_grad block exits
            output = output.detach().requires_grad_(True)
        taps.append(output)
        return output.clone()  # the network gets a copy: an in-place op after the layer cannot alter the tap

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            yield taps
    finally:
        handle.remove()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pre-softmax scores (Grad-CAM's S^c), also for a model that ends in nn.Softmax."""
    softmax = _layers(model, x).final_softmax
    if softmax is None:
        return model(x)
    inputs: list[torch.Tensor] = []
    handle = softmax.register_forward_hook(lambda module, args, output: inputs.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return inputs[-1]


def _targets(target, logits: torch.Tensor) -> torch.Tensor:
    if isinstance(target, torch.Tensor):  # already resolved by this module
        return target
    checked = explain.check_targets(target, logits.shape[0], logits.shape[1])
    if checked is None:
        return logits.argmax(dim=1)
    return torch.as_tensor(checked, device=logits.device)


def _score(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of each image's target logit: images are independent in eval mode, so its
    gradient holds every image's own gradient."""
    return logits.gather(1, targets[:, None]).sum()


# ---------------------------------------------------------------------------------------------
# Normalisation and resizing, on the device.


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per image (m - min) / (max - min); a constant map becomes zeros."""
    flat = maps.flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = high - low
    return torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1), 0).view_as(maps)


def _normalise_signed(maps: torch.Tensor) -> torch.Tensor:
    """Per image 0.5 + m / (2 max|m|): zero stays mid-grey; an all-zero map stays 0.5."""
    peak = maps.flatten(1).abs().amax(1).view(-1, *[1] * (maps.dim() - 1))
    return 0.5 + maps / (2 * torch.where(peak > 0, peak, 1))


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear with half-pixel centres (align_corners=False)."""
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def _finish(maps: torch.Tensor, x: torch.Tensor, normalize: bool, upsample: bool) -> np.ndarray:
    if upsample:
        maps = _upsample(maps, x.shape[-2:])
    if normalize:
        maps = _normalise(maps)
    return maps.detach().float().cpu().numpy()


def _channels_last(maps: torch.Tensor, normalize: bool) -> np.ndarray:
    if normalize:
        maps = _normalise_signed(maps)
    return maps.permute(0, 2, 3, 1).detach().float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# The methods.


def cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
        normalize: bool = True, upsample: bool = True, strict: bool = True) -> np.ndarray:
    """Class activation map (Zhou et al. 2016, eq. 2): M_c(x, y) = sum_k w_k^c f_k(x, y).

    f is the feature map that global average pooling reduces and w the linear layer after it. The
    head is checked on the batch itself: the logits must equal mean_xy(f) @ W.T + b, so that
    mean_xy M_c + b_c = logit_c. CAM is signed (no ReLU).

    strict=False skips that check and only requires the last nn.Linear to take as many inputs as
    f has channels: the same formula then applies to any pooling -> linear head, e.g. global max
    pooling, as in the CAM paper's GAP-vs-GMP comparison (there mean_xy M_c + b_c is not the logit).
    """
    _check_input(model, x)
    with _inference(model), torch.no_grad():
        features, linear, logits = _cam_parts(model, x, layer, strict)
        maps = torch.einsum("bk,bkhw->bhw", linear.weight[_targets(target, logits)], features)
        return _finish(maps, x, normalize, upsample)


def _cam_parts(model: nn.Module, x: torch.Tensor, layer: str | None, strict: bool):
    """One forward pass: the feature map f, the last nn.Linear and the logits, after CAM's head checks."""
    name, module = _resolve_layer(model, x, layer)
    linear_name = _layers(model, x).last_linear
    if linear_name is None:
        raise explain.no_cam_head("the model has no nn.Linear layer")
    linear = dict(model.named_modules())[linear_name]
    with _tap(model, name, module, x, grad=False) as taps:
        logits = _logits(model, x)
    features = taps[0]
    if features.shape[1] != linear.in_features:
        raise explain.no_cam_head(f"{name!r} has {features.shape[1]} channels but {linear_name!r} "
                                  f"takes {linear.in_features} inputs")
    expected = linear(features.mean(dim=(2, 3)))
    tolerance = 1e-3 * (1 + logits.abs().max())
    if strict and not torch.allclose(expected, logits, rtol=0, atol=float(tolerance)):
        raise explain.no_cam_head(f"the logits are not {linear_name!r} applied to the spatial mean of {name!r}")
    return features, linear, logits


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
             normalize: bool = True, upsample: bool = True) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017, eqs. 1-2): ReLU(sum_k alpha_k^c A^k), alpha_k^c = mean_ij dS^c/dA^k_ij.

    S^c is the pre-softmax score; any convolutional layer by name (None: the last feature map).
    """
    _check_input(model, x)
    with _inference(model):
        return _finish(_grad_cam(model, x, target, layer), x, normalize, upsample)


def _grad_cam(model: nn.Module, x: torch.Tensor, target, layer: str | None) -> torch.Tensor:
    name, module = _resolve_layer(model, x, layer)
    with _tap(model, name, module, x, grad=True) as taps:
        logits = _logits(model, x)
        activations = taps[0]
        (gradients,) = torch.autograd.grad(_score(logits, _targets(target, logits)), activations)
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        return F.relu((weights * activations.detach()).sum(dim=1))


def _input_gradients(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """dS/dx for a batch; `target` is resolved on this very forward pass (None: top-1)."""
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = _logits(model, leaf)
        (gradients,) = torch.autograd.grad(_score(logits, _targets(target, logits)), leaf)
    return gradients


def saliency(model: nn.Module, x: torch.Tensor, target=None, normalize: bool = True) -> np.ndarray:
    """Vanilla gradient (Simonyan et al. 2014, sec. 3.1): max over channels of |dS_c/dx|."""
    _check_input(model, x)
    with _inference(model):
        return _finish(_input_gradients(model, x, target).abs().amax(dim=1), x, normalize, upsample=False)


def _resolved_targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """The (B,) classes on the clean batch: None costs one forward (top-1), explicit classes none."""
    if target is None:
        with torch.no_grad():
            return _logits(model, x).argmax(dim=1)
    checked = explain.check_targets(target, x.shape[0], _layers(model, x).num_classes)
    return torch.as_tensor(checked, device=x.device)


def smooth_grad(model: nn.Module, x: torch.Tensor, target=None, n: int = explain.SMOOTH_GRAD_DEFAULT_N,
                sigma: float = explain.SMOOTH_GRAD_DEFAULT_SIGMA, batch_size: int | None = 32,
                squared: bool = False, seed: int | None = None, normalize: bool = True,
                method: str = "saliency", layer: str | None = None) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017, eq. 3): the mean input gradient over n copies x + N(0, s^2).

    s = sigma * (max(x_i) - min(x_i)) per image. The n * B noisy images run in chunks of at most
    `batch_size` (None: all at once), so peak memory does not grow with n. The map is the max over
    channels of |mean gradient|; squared=True averages squared gradients instead. An int `seed` draws
    the noise from explain.hashed_normal: the same noise in both frameworks and on any device.

    method="grad_cam": Smilkov et al. 2017 note that SmoothGrad can be applied to other gradient-based
    maps (they combine it with Integrated Gradients and Guided BackProp); here to Grad-CAM at `layer`
    (None: the last feature map). The same noisy copies, chunks and seed, the targets of the clean
    images; the mean of the raw (ReLU'd) Grad-CAM maps at the layer's resolution (squared=True: of
    their squares), upsampled bilinearly to the input and normalised like grad_cam. With sigma=0 it
    is grad_cam. `layer` is only for method="grad_cam".
    """
    _check_input(model, x)
    explain.check_smooth_grad(n, sigma, batch_size)
    explain.check_smooth_grad_method(method, layer)
    batch = x.shape[0]
    with _inference(model):
        targets = _resolved_targets(model, x, target)
        spread = sigma * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
        key = explain.hash_key(seed) if seed is not None else None
        total = torch.zeros_like(x) if method == "saliency" else None
        chunk = batch_size or n * batch
        for start in range(0, n * batch, chunk):
            images = torch.arange(start, min(start + chunk, n * batch), device=x.device) % batch
            if key is None:
                noise = torch.randn((len(images), *x.shape[1:]), device=x.device, dtype=x.dtype)
            else:
                noise = _hashed_normal(key, start, len(images), x.shape[1:], x.device).to(x.dtype)
            noisy = x[images] + spread[images, None, None, None] * noise
            if method == "saliency":
                gradients = _input_gradients(model, noisy, targets[images])
                total.index_add_(0, images, gradients.square() if squared else gradients)
            else:
                maps = _grad_cam(model, noisy, targets[images], layer)  # raw, ReLU'd, (chunk, h, w)
                if total is None:
                    total = maps.new_zeros((batch, *maps.shape[1:]))
                total.index_add_(0, images, maps.square() if squared else maps)
        mean = total / n
        if method == "grad_cam":
            return _finish(mean, x, normalize, upsample=True)
        maps = mean.amax(dim=1) if squared else mean.abs().amax(dim=1)
        return _finish(maps, x, normalize, upsample=False)


def _mix(v: torch.Tensor) -> torch.Tensor:
    for _ in range(2):
        v = ((v ^ (v >> 16)) * explain.HASH_MULTIPLIER) & explain.HASH_MASK
    return v ^ (v >> 16)


def _hashed_normal(key: int, first: int, count: int, chw, device) -> torch.Tensor:
    """explain.hashed_normal on the device, returned as (count, C, H, W)."""
    channels, height, width = chw
    elements = height * width * channels
    counter = torch.arange(first * elements, (first + count) * elements, device=device, dtype=torch.int64)
    bits = _mix(_mix((counter & explain.HASH_MASK) ^ key) ^ (counter >> 32))
    u1 = ((bits >> 16).float() + 0.5) / 65536.0
    u2 = ((bits & 0xFFFF).float() + 0.5) / 65536.0
    normal = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return normal.view(count, height, width, channels).permute(0, 3, 1, 2)


class _GuidedReLU(torch.autograd.Function):
    """Forward: clamp(x, 0, upper). Backward (Springenberg et al. 2015, eq. for 'guided backpropagation'):
    pass the gradient only where it is positive and the input was in the linear part, 0 < x (< upper)."""

    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        keep = (grad > 0) & (x > 0)
        if ctx.upper is not None:
            keep &= x < ctx.upper
        return grad * keep, None


_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _Guided(TorchFunctionMode):
    """Routes every relu, relu6 and hardtanh(0, m) call (nn.ReLU, nn.ReLU6 and the functional forms)
    through the guided rule, for the duration of a `with` block. The model itself is not touched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS:
            return _GuidedReLU.apply(args[0], None)
        if func is F.relu6:
            return _GuidedReLU.apply(args[0], 6.0)
        if func is F.hardtanh:  # nn.ReLU6 calls hardtanh(x, 0, 6)
            low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
            if low == 0:
                return _GuidedReLU.apply(args[0], float(high))
        return func(*args, **kwargs)


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, normalize: bool = True) -> np.ndarray:
    """Guided Backpropagation (Springenberg et al. 2015): the input gradient with the guided rule at
    every ReLU and ReLU6. Per input channel: (B, H, W, 3), signed; normalised 0.5 + g / (2 max|g|)."""
    _check_input(model, x)
    with _inference(model):
        return _channels_last(_guided_gradients(model, x, target), normalize)


def _guided_gradients(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    with _Guided():
        return _input_gradients(model, x, target)


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
                    normalize: bool = True) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017, sec. 3.1): Guided Backprop times the upsampled Grad-CAM.

    (B, H, W, 3), signed; normalised 0.5 + m / (2 max|m|).
    """
    _check_input(model, x)
    with _inference(model):
        targets = _resolved_targets(model, x, target)
        coarse = _upsample(_grad_cam(model, x, targets, layer), x.shape[-2:])
        return _channels_last(_guided_gradients(model, x, targets) * coarse[:, None], normalize)


def cam_parts(model: nn.Module, x: torch.Tensor, layer: str | None = None,
              strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of CAM, for computing any class's map without running the model again.

    Returns numpy float32 (features f (B, K, h, w), weight W (classes, K), bias b (classes,)), channels
    first in both backends: cam(model, x, c, layer, normalize=False, upsample=False)[i] equals
    einsum("k,khw->hw", W[c], f[i]). One forward pass; the same head checks as `cam`.
    """
    _check_input(model, x)
    with _inference(model), torch.no_grad():
        features, linear, _ = _cam_parts(model, x, layer, strict)
        bias = linear.bias if linear.bias is not None else features.new_zeros(linear.out_features)
        return tuple(t.float().cpu().numpy() for t in (features, linear.weight, bias))
