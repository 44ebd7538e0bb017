"""The explanation methods in PyTorch: the rows of the table of methods (utils.contract.METHODS).

Read it beside utils/tensorflow/methods.py: the same sections in the same order, the same private
names for the same roles, the same loops; what differs is framework. What each method promises, and
its docstring, is written once in utils.contract (ARCHITECTURE.md, "What an explanation method
promises"). Every method takes a batch x (B, 3, H, W) from xt.preprocess on the model's device and
returns numpy arrays; the maths stays on the device and batched.

PyTorch's part, in three ideas a reader can reuse:

- Reading an inner layer: a forward hook on the module records its output (`_tap`); one probing
  pass with hooks on every module lists the feature maps (`_Layers`), cached per model.
- Changing the backward pass: Guided Backprop routes every relu, relu6 and hardtanh(0, m) call
  through a custom autograd function while a TorchFunctionMode is active (`_guided_relus`); the
  model's modules are never swapped. A final nn.Softmax is read around (`_forward` takes its input).
- Leaving the model as found: eval mode only for the call (`inference`), hooks removed in
  `finally` blocks, also after an error.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .. import contract
from .core import chunk_size, inference

# ---------------------------------------------------------------------------------------------
# Inputs: the batch and the targets


def _check_input(model: nn.Module, x) -> torch.Tensor:
    """The batch, after checking it is a 4-D, non-empty, finite tensor on the model's device."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch from xt.preprocess, got {type(x).__name__}")
    contract.check_batch(tuple(x.shape), channels_last=False)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device != x.device:
        raise ValueError(f"the batch is on {x.device} but the model on {parameter.device}; "
                         "make the batch with xt.preprocess(images, model)")
    if not torch.isfinite(x).all():
        raise contract.non_finite_input()
    return x


def _targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """The checked targets as a (B,) int64 tensor; -1 stands for the image's top-1 class in the very
    forward pass that computes the map (`_scores` resolves it)."""
    targets = contract.check_targets(target, x.shape[0], _layers(model, x).num_classes)
    if targets is None:
        return torch.full((x.shape[0],), -1, dtype=torch.int64, device=x.device)
    return torch.as_tensor(targets, device=x.device)


def _clean_targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """The (B,) classes of the clean batch, for methods that run the model on other images (noisy
    copies) or twice: explicit classes as they are, None the top-1 of one forward pass."""
    targets = _targets(model, x, target)
    if target is None:
        with torch.no_grad():
            targets = _forward(model, x).argmax(dim=1)
    return targets


# ---------------------------------------------------------------------------------------------
# Layers: which outputs are feature maps, and the one a method reads


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
                if _is_feature_map(output):
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
        self.image_shape = tuple(x.shape[1:])


def _is_feature_map(output) -> bool:
    """(B, C, h, w) with more than one position."""
    return isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1


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
    """The probe of `model` for images of x's size, run once and kept until the model's modules change
    (which maps are feature maps depends on the image size: a 7 x 7 map at 224 px is 1 x 1 at 32 px)."""
    probe = _probes.get(model)
    if probe is None or probe.signature != _signature(model) or probe.image_shape != tuple(x.shape[1:]):
        probe = _probes[model] = _Layers(model, x)
    return probe


@contract.shared_doc("feature_layers")
def feature_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """PyTorch: module names, at the shallowest depth that offers a choice (EfficientNet's
    features.stem ... features.head, ResNet's conv1 ... layer4). Without `x`, a 224 x 224 zero image
    probes the model."""
    if x is None:
        x = torch.zeros(1, 3, 224, 224, device=next(model.parameters()).device)
    with inference(model):
        return list(_layers(model, x).feature_layers)


def _feature_layer(model: nn.Module, x: torch.Tensor, layer: str | None) -> tuple[str, nn.Module]:
    """The name and module of the feature map `layer`; None: the last feature map."""
    probe = _layers(model, x)
    if layer is None:
        if not probe.feature_layers:
            raise ValueError("the model has no convolutional feature map; these methods explain CNNs")
        layer = probe.feature_layers[-1]
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or layer not in modules or not layer:
        raise contract.unknown_layer(layer, probe.feature_layers)
    return layer, modules[layer]


# ---------------------------------------------------------------------------------------------
# Running the model: a tap on one layer, the pre-softmax scores


@contextmanager
def _tap(model: nn.Module, layer: tuple[str, nn.Module], x: torch.Tensor, grad: bool):
    """Record the output of the layer (name, module) during the forward passes inside the block.

    With grad=True the recorded output is a fresh leaf that requires grad: the forward runs under
    no_grad and the graph starts at the layer, so the backward stops there too (Grad-CAM's floor).
    """
    name, module = layer
    taps: list[torch.Tensor] = []

    def hook(mod, inputs, output):
        if not _is_feature_map(output):
            raise contract.not_a_feature_map(name, getattr(output, "shape", ()), _layers(model, x).feature_layers)
        if taps:
            raise contract.layer_called_more_than_once(name, len(taps) + 1)
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


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pre-softmax scores S (Grad-CAM's S^c), also for a model that ends in nn.Softmax."""
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


def _scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The targets with -1 resolved to each image's top-1 class, and each image's score S^c. The images
    are independent in eval mode, so the gradient of the scores' sum holds every image's own gradient."""
    targets = torch.where(targets < 0, logits.argmax(dim=1), targets)
    return targets, logits.gather(1, targets[:, None])[:, 0]


# ---------------------------------------------------------------------------------------------
# The guided ReLU


class _GuidedReLU(torch.autograd.Function):
    """Forward: clamp(x, 0, upper). Backward (Springenberg et al. 2015, fig. 1): pass the gradient only
    where it is positive and the input was in the linear part, 0 < x (< upper)."""

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


def _guided_relu(x: torch.Tensor, max_value: float | None = None) -> torch.Tensor:
    """ReLU (capped at `max_value`) with the guided backward rule."""
    return _GuidedReLU.apply(x, max_value)


_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _GuidedMode(TorchFunctionMode):
    """Routes every relu, relu6 and hardtanh(0, m) call (nn.ReLU, nn.ReLU6 and the functional forms)
    through the guided rule while active."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS:
            return _guided_relu(args[0])
        if func is F.relu6:
            return _guided_relu(args[0], 6.0)
        if func is F.hardtanh:  # nn.ReLU6 calls hardtanh(x, 0, 6)
            low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
            if low == 0:
                return _guided_relu(args[0], float(high))
        return func(*args, **kwargs)


def _guided_relus(model: nn.Module) -> _GuidedMode:
    """Every ReLU and ReLU6 the model calls becomes guided inside the `with` block; the model itself
    is not touched."""
    return _GuidedMode()


def _fold_pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(convolution, BatchNorm) pairs in which the BatchNorm is the only reader of the convolution's output:
    consecutive children of a plain nn.Sequential, each module used once. The convolution is a Conv2d (or
    declares `convolves_last`: its forward ends in Conv2d's), the BatchNorm a BatchNorm2d in eval mode with
    running statistics over its channels; neither has hooks (they would see the folded output) or a patch."""
    uses: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        uses[id(module)] = uses.get(id(module), 0) + 1

    def foldable(conv, norm) -> bool:
        return ((type(conv) is nn.Conv2d or getattr(type(conv), "convolves_last", False))
                and type(conv)._conv_forward is nn.Conv2d._conv_forward
                and type(norm) is nn.BatchNorm2d and not norm.training and norm.running_mean is not None
                and norm.num_features == conv.out_channels and conv.weight.dtype == norm.running_mean.dtype
                and uses[id(conv)] == uses[id(norm)] == 1 and "_conv_forward" not in conv.__dict__
                and "forward" not in norm.__dict__ and not (conv._forward_hooks or conv._forward_pre_hooks
                                                            or norm._forward_hooks or norm._forward_pre_hooks))
    pairs = []
    for sequence in model.modules():
        if isinstance(sequence, nn.Sequential) and type(sequence).forward is nn.Sequential.forward:
            children = list(sequence.children())
            pairs += [(conv, norm) for conv, norm in zip(children, children[1:]) if foldable(conv, norm)]
    return pairs


@contextmanager
def _folded_batchnorms(model: nn.Module):
    """Inference with each BatchNorm folded into the convolution before it, for the block's duration.

    In eval mode BN(W * x + b) = (s W) * x + s (b - mu) + beta with s = gamma / sqrt(var + eps) (Ioffe and
    Szegedy 2015, sec. 3.1), so one convolution with the scaled kernel gives the same output without a
    pass over the activations. On a CPU the scaled kernels are stored channels-last, the layout oneDNN
    prefers, and the activations follow them: together about 15% off EfficientNet-Lite0's forward time.
    The scaled kernels are computed at entry from the current weights; the model's parameters are not
    touched, and the instance attributes that route the convolution through them are removed on exit,
    also after an error. Outside an nn.Sequential a convolution and its BatchNorm stay as they are (the
    pairing cannot be seen there). Global forward hooks turn folding off: they would see folded outputs."""
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        yield
        return
    patched = []
    try:
        with torch.no_grad():
            for conv, norm in _fold_pairs(model):
                scale = torch.rsqrt(norm.running_var + norm.eps)
                if norm.weight is not None:
                    scale = scale * norm.weight
                shift = -norm.running_mean * scale
                if conv.bias is not None:
                    shift = shift + conv.bias * scale
                if norm.bias is not None:
                    shift = shift + norm.bias
                weight = conv.weight * scale.view(-1, 1, 1, 1)
                if weight.device.type == "cpu":  # oneDNN's preferred layout: the activations follow it
                    weight = weight.contiguous(memory_format=torch.channels_last)
                conv._conv_forward = lambda x, _weight, _bias, conv=conv, weight=weight, shift=shift: (
                    nn.Conv2d._conv_forward(conv, x, weight, shift))
                patched.append((conv, "_conv_forward"))
                norm.forward = lambda x: x
                patched.append((norm, "forward"))
        yield
    finally:
        for module, name in reversed(patched):
            delattr(module, name)


# ---------------------------------------------------------------------------------------------
# The maps, on the device


def _cam_parts(model: nn.Module, x: torch.Tensor, layer: str | None, strict: bool):
    """One forward pass: the feature map f (B, K, h, w), the last linear layer's weight (classes, K) and
    bias (classes,), and the logits, after CAM's head checks."""
    tap = _feature_layer(model, x, layer)
    linear_name = _layers(model, x).last_linear
    if linear_name is None:
        raise contract.no_cam_head("the model has no nn.Linear layer")
    linear = dict(model.named_modules())[linear_name]
    with _tap(model, tap, x, grad=False) as taps:
        logits = _forward(model, x)
    features = taps[0]
    if features.shape[1] != linear.in_features:
        raise contract.no_cam_head(f"{tap[0]!r} has {features.shape[1]} channels but {linear_name!r} "
                                   f"takes {linear.in_features} inputs")
    bias = linear.bias if linear.bias is not None else features.new_zeros(linear.out_features)
    mismatch = (features.mean(dim=(2, 3)) @ linear.weight.T + bias - logits).abs().max()
    if strict and float(mismatch) > 1e-3 * (1 + float(logits.abs().max())):
        raise contract.no_cam_head(f"the logits differ from mean_xy({tap[0]}) W^T + b of the last linear layer "
                                   f"{linear_name!r} by up to {float(mismatch):.3g}, so the head is not global "
                                   "average pooling followed by that layer")
    return features, linear.weight, bias, logits


def _layer_gradients(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: str | None):
    """The feature map A (B, K, h, w) at `layer` and dS^c/dA of each image's own score: one forward pass,
    and a backward pass that stops at the layer."""
    tap = _feature_layer(model, x, layer)
    with _tap(model, tap, x, grad=True) as taps:
        logits = _forward(model, x)
        activations = taps[0]
        _, scores = _scores(logits, targets)
        (gradients,) = torch.autograd.grad(scores.sum(), activations)
    return activations.detach().float(), gradients.float()


def _grad_cam_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: str | None,
                    counterfactual: bool = False) -> torch.Tensor:
    """Raw Grad-CAM maps (B, h, w) at the layer's resolution (Selvaraju et al. 2017, eqs. 1-2);
    counterfactual: with the gradients negated (sec. "Counterfactual Explanations")."""
    activations, gradients = _layer_gradients(model, x, targets, layer)
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # eq. 1: alpha_k^c
    if counterfactual:  # alpha_k^c of -dS^c/dA^k: the evidence against the class
        weights = -weights
    return F.relu((weights * activations).sum(dim=1))  # eq. 2


def _input_gradients(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, guided: bool = False) -> torch.Tensor:
    """dS^c/dx per image (Simonyan et al. 2014, eq. 3), through guided ReLUs when `guided`."""
    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        with _guided_relus(model) if guided else nullcontext():
            logits = _forward(model, leaf)
        _, scores = _scores(logits, targets)
        (gradients,) = torch.autograd.grad(scores.sum(), leaf)
    return gradients


def _perturbed_scores(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    """The target's score (softmax probability or logit) for a chunk of changed images, without a graph."""
    with torch.no_grad():
        logits = _forward(model, images).float()
    values = logits.softmax(dim=1) if score == "probability" else logits
    return values.gather(1, targets[:, None])[:, 0]


def _baseline(model: nn.Module, x: torch.Tensor, baseline) -> torch.Tensor:
    """The reference image x' in the model's input space: a pixel value made uniform image, or a batch as given."""
    if isinstance(baseline, torch.Tensor) or isinstance(baseline, np.ndarray):
        reference = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
        if tuple(reference.shape) not in (tuple(x.shape), tuple(x.shape[1:])):
            raise ValueError(f"a baseline array must be shaped like the batch {tuple(x.shape)} or one image "
                             f"{tuple(x.shape[1:])}, got {tuple(reference.shape)}")
        return reference.expand_as(x)
    colour = torch.as_tensor(contract.baseline_pixels(model, baseline), dtype=x.dtype, device=x.device)
    return colour.view(1, 3, 1, 1).expand_as(x)


def _chunks(total: int, size: int, device):
    """Index ranges first .. first+size-1 covering 0 .. total-1, as tensors."""
    for first in range(0, total, size):
        yield torch.arange(first, min(first + size, total), device=device)


def _noisy_copies(x: torch.Tensor, spread: torch.Tensor, key: int | None, first: int, count: int):
    """Noisy samples first .. first+count-1: sample j is x_{j % B} + s_{j % B} * noise_j; and which
    image each copies. With a key the noise of sample j comes from (key, j): the same whatever the chunk
    size, and the same as TensorFlow's; without one, torch's own generator."""
    images = torch.arange(first, first + count, device=x.device) % x.shape[0]
    if key is None:
        noise = torch.randn((count, *x.shape[1:]), device=x.device, dtype=x.dtype)
    else:
        noise = _hashed_normal(key, first, count, x.shape[1:], x.device).to(x.dtype)
    return x[images] + spread[images, None, None, None] * noise, images


def _hashed_normal(key: int, first: int, count: int, chw, device) -> torch.Tensor:
    """contract.hashed_normal on the device, returned as (count, C, H, W)."""
    channels, height, width = chw
    elements = height * width * channels
    counter = torch.arange(first * elements, (first + count) * elements, device=device, dtype=torch.int64)
    bits = _mix(_mix((counter & contract.HASH_MASK) ^ key) ^ (counter >> 32))
    u1 = ((bits >> 16).float() + 0.5) / 65536.0
    u2 = ((bits & 0xFFFF).float() + 0.5) / 65536.0
    normal = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return normal.view(count, height, width, channels).permute(0, 3, 1, 2)


def _mix(v: torch.Tensor) -> torch.Tensor:
    """contract._mix on int64 tensors."""
    for _ in range(2):
        v = ((v ^ (v >> 16)) * contract.HASH_MULTIPLIER) & contract.HASH_MASK
    return v ^ (v >> 16)


# ---------------------------------------------------------------------------------------------
# Outputs: resizing and normalising on the device, numpy at the end


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear with half-pixel centres (align_corners=False)."""
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


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


def _heatmap(maps: torch.Tensor, x: torch.Tensor, normalize: bool, upsample: bool) -> np.ndarray:
    """(B, h, w) maps -> numpy (B, H, W) float32, upsampled to the input and normalised as asked."""
    if upsample:
        maps = _upsample(maps, x.shape[-2:])
    if normalize:
        maps = _normalise(maps)
    return maps.detach().float().cpu().numpy()


def _signed_map(maps: torch.Tensor, normalize: bool) -> np.ndarray:
    """(B, C, H, W) signed maps -> numpy (B, H, W, C) float32, normalised around 0.5 as asked."""
    if normalize:
        maps = _normalise_signed(maps)
    return maps.permute(0, 2, 3, 1).detach().float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# The methods, in the table's order


@contract.shared_doc("cam")
def cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
        normalize: bool = True, upsample: bool = True, strict: bool = True) -> np.ndarray:
    """PyTorch: w is the weight of the model's last nn.Linear."""
    x = _check_input(model, x)
    with inference(model), torch.no_grad():
        targets = _targets(model, x, target)
        features, weight, _, logits = _cam_parts(model, x, layer, strict)
        targets, _ = _scores(logits, targets)
        maps = torch.einsum("bk,bkhw->bhw", weight[targets], features)  # M_c(x, y) = sum_k w_k^c f_k(x, y)
        return _heatmap(maps, x, normalize, upsample)


@contract.shared_doc("cam_parts")
def cam_parts(model: nn.Module, x: torch.Tensor, layer: str | None = None,
              strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _check_input(model, x)
    with inference(model), torch.no_grad():
        features, weight, bias, _ = _cam_parts(model, x, layer, strict)
        return tuple(t.float().cpu().numpy() for t in (features, weight, bias))


@contract.shared_doc("layer_gradients")
def layer_gradients(model: nn.Module, x: torch.Tensor, target=None,
                    layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = _check_input(model, x)
    with inference(model):
        activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
        return activations.cpu().numpy(), gradients.cpu().numpy()


@contract.shared_doc("grad_cam")
def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
             normalize: bool = True, upsample: bool = True, counterfactual: bool = False) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        targets = _targets(model, x, target)
        return _heatmap(_grad_cam_maps(model, x, targets, layer, counterfactual), x, normalize, upsample)


@contract.shared_doc("grad_cam_plus_plus")
def grad_cam_plus_plus(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
                       normalize: bool = True, upsample: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
        squared = gradients.square()
        denominator = 2 * squared + activations.sum(dim=(2, 3), keepdim=True) * gradients.pow(3)  # eq. 19
        alpha = torch.where(denominator != 0, squared / torch.where(denominator != 0, denominator, 1), 0)
        weights = (alpha * F.relu(gradients)).sum(dim=(2, 3), keepdim=True)  # eq. 7, positive gradients only
        return _heatmap(F.relu((weights * activations).sum(dim=1)), x, normalize, upsample)


@contract.shared_doc("layer_cam")
def layer_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
              normalize: bool = True, upsample: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
        return _heatmap(F.relu((F.relu(gradients) * activations).sum(dim=1)), x, normalize, upsample)


@contract.shared_doc("hires_cam")
def hires_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
              normalize: bool = True, upsample: bool = True, relu: bool = False) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
        maps = (gradients * activations).sum(dim=1)
        return _heatmap(F.relu(maps) if relu else maps, x, normalize, upsample)


@contract.shared_doc("score_cam")
def score_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
              normalize: bool = True, upsample: bool = True, top_k: int | None = None,
              batch_size: int | None = None, score: str = "probability") -> np.ndarray:
    x = _check_input(model, x)
    batch_size = chunk_size(batch_size, x)
    contract.check_score(score)
    with inference(model), torch.no_grad():
        targets = _targets(model, x, target)
        tap = _feature_layer(model, x, layer)
        with _tap(model, tap, x, grad=False) as taps:
            targets, _ = _scores(_forward(model, x), targets)
        activations = taps[0].float()  # (B, K, h, w)
        contract.check_top_k(top_k, activations.shape[1], tap[0])
        if top_k is not None:  # Faster Score-CAM: the channels of largest spatial variance
            kept = activations.flatten(2).var(dim=2).topk(top_k, dim=1).indices
            activations = activations.gather(1, kept[:, :, None, None].expand(-1, -1, *activations.shape[2:]))
        channels = activations.shape[1]
        scores = torch.empty(x.shape[0] * channels, device=x.device)
        with _folded_batchnorms(model):
            floor = _perturbed_scores(model, torch.zeros_like(x), targets, score)  # p_c(X_b), X_b = X * 0
            for pairs in _chunks(len(scores), batch_size, x.device):  # (image, channel) pairs, not per image
                images = pairs // channels
                masks = _normalise(_upsample(activations.flatten(0, 1)[pairs], x.shape[-2:]))  # H^k in [0, 1]
                scores[pairs] = _perturbed_scores(model, x[images] * masks[:, None], targets[images], score)
        weights = scores.view(x.shape[0], channels) - floor[:, None]  # p_c(X * H^k) - p_c(X_b)
        maps = F.relu(torch.einsum("bk,bkhw->bhw", weights, activations))
        return _heatmap(maps, x, normalize, upsample)


@contract.shared_doc("occlusion")
def occlusion(model: nn.Module, x: torch.Tensor, target=None, patch: int = 32, stride: int = 16,
              baseline=contract.GREY, batch_size: int | None = None, score: str = "probability",
              normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    batch_size = chunk_size(batch_size, x)
    contract.check_score(score)
    height, width = x.shape[-2:]
    with inference(model), torch.no_grad():
        targets = _clean_targets(model, x, target)
        contract.check_patch(patch, stride, height, width)
        fill = _baseline(model, x, baseline)
        covered = torch.as_tensor(contract.patch_masks(height, width, patch, stride), device=x.device)
        positions = len(covered)
        drops = torch.empty(x.shape[0] * positions, device=x.device)
        with _folded_batchnorms(model):
            clean = _perturbed_scores(model, x, targets, score)
            for pairs in _chunks(len(drops), batch_size, x.device):  # (image, position) pairs
                images, mask = pairs // positions, covered[pairs % positions][:, None]
                occluded = torch.where(mask, fill[images], x[images])
                drops[pairs] = clean[images] - _perturbed_scores(model, occluded, targets[images], score)
        coverage = covered.float()
        maps = torch.einsum("bp,phw->bhw", drops.view(x.shape[0], positions), coverage) / coverage.sum(dim=0)
        return _heatmap(maps, x, normalize, upsample=False)


@contract.shared_doc("saliency")
def saliency(model: nn.Module, x: torch.Tensor, target=None, normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        gradients = _input_gradients(model, x, _targets(model, x, target))
        return _heatmap(gradients.abs().amax(dim=1), x, normalize, upsample=False)


@contract.shared_doc("smooth_grad")
def smooth_grad(model: nn.Module, x: torch.Tensor, target=None, n: int = contract.SMOOTH_GRAD_DEFAULT_N,
                sigma: float = contract.SMOOTH_GRAD_DEFAULT_SIGMA, batch_size: int | None = 32,
                squared: bool = False, seed: int | None = None, normalize: bool = True,
                method: str = "saliency", layer: str | None = None) -> np.ndarray:
    """PyTorch: without a seed the noise comes from torch's generator (xt.seed_everything seeds it)."""
    x = _check_input(model, x)
    contract.check_smooth_grad(n, sigma, batch_size)
    contract.check_smooth_grad_method(method, layer)
    with inference(model):
        targets = _clean_targets(model, x, target)
        spread = sigma * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
        key = contract.hash_key(seed) if seed is not None else None
        samples, total = n * x.shape[0], None
        chunk = batch_size or samples
        for first in range(0, samples, chunk):  # chunks of noisy images, not a loop over images
            noisy, images = _noisy_copies(x, spread, key, first, min(chunk, samples - first))
            if method == "saliency":
                maps = _input_gradients(model, noisy, targets[images])
            else:
                maps = _grad_cam_maps(model, noisy, targets[images], layer)  # raw, ReLU'd, (chunk, h, w)
            if squared:
                maps = maps.square()
            if total is None:
                total = maps.new_zeros((x.shape[0], *maps.shape[1:]))
            total.index_add_(0, images, maps)
        mean = total / n
        if method == "grad_cam":
            return _heatmap(mean, x, normalize, upsample=True)
        return _heatmap((mean if squared else mean.abs()).amax(dim=1), x, normalize, upsample=False)


@contract.shared_doc("guided_backprop")
def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        return _signed_map(_input_gradients(model, x, _targets(model, x, target), guided=True), normalize)


@contract.shared_doc("guided_grad_cam")
def guided_grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None,
                    normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    with inference(model):
        targets = _clean_targets(model, x, target)
        coarse = _upsample(_grad_cam_maps(model, x, targets, layer), x.shape[-2:])
        guided = _input_gradients(model, x, targets, guided=True)
        return _signed_map(guided * coarse[:, None], normalize)


@contract.shared_doc("integrated_gradients")
def integrated_gradients(model: nn.Module, x: torch.Tensor, target=None, baseline=contract.BLACK,
                         steps: int = contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS,
                         batch_size: int | None = None, normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    contract.check_steps(steps)
    batch_size = chunk_size(batch_size, x)
    with inference(model):
        targets = _clean_targets(model, x, target)
        start = _baseline(model, x, baseline)
        path = x - start
        total = torch.zeros_like(x)
        with _folded_batchnorms(model):
            for samples in _chunks(steps * x.shape[0], batch_size, x.device):  # (step, image) pairs
                images, alpha = samples % x.shape[0], (samples // x.shape[0] + 1).to(x.dtype) / steps  # eq. 3: k / m
                points = start[images] + alpha[:, None, None, None] * path[images]
                total.index_add_(0, images, _input_gradients(model, points, targets[images]))
        maps = (path * total / steps).sum(dim=1)  # eq. 1, summed over colour channels
        return _heatmap(maps.abs() if normalize else maps, x, normalize, upsample=False)
