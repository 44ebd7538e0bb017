"""Speed of our Grad-CAM and SmoothGrad against their floors and the established libraries.

Side by side in one process, same model, batch, input and device (ARCHITECTURE.md, "Tests and CI"):
  floor     Grad-CAM: one forward plus the backward to the layer; SmoothGrad: n forward-and-backward
            passes to the input, in the same chunks of `batch_size` images.
  ours      utils.torch / utils.tensorflow.
  libraries pytorch-grad-cam and Captum (torch), tf-keras-vis (TensorFlow): `pip install -e ".[bench]"`.
Figures are medians of --repeats rounds after warm-up, the cases of a method interleaved
round by round; ratios are the ones to quote.

    python scripts/benchmark.py --framework torch --batch 8 --device cuda
    python scripts/benchmark.py --framework tensorflow --batch 2 --smooth-n 10

--case explorer times the interactive explorer (utils/explorer.py) on the embedded EfficientNet-Lite0 and
the cat-and-coffee photo: after the first render, a change of class (top-1 <-> top-2) and of the box
threshold for CAM and Grad-CAM, each a full redraw from the cache (the target is at most 100 ms on CPU):

    python scripts/benchmark.py --case explorer --threads 1

--case table times every method of the table of methods (utils.contract.METHODS) with its defaults
(SmoothGrad with --smooth-n samples; Score-CAM, occlusion and Integrated Gradients with the explorer's
lighter settings of the table), same model, batch and device, beside Grad-CAM's time: what a new
method costs next to the one it extends.

    python scripts/benchmark.py --case table --model efficientnet_lite0 --batch 8

--case perturbation times Score-CAM (all channels, and top-k), occlusion and Integrated Gradients against
their floors (the same forward or forward-and-backward passes in the same chunks, nothing else) and
pytorch-grad-cam's ScoreCAM, Captum's Occlusion and IntegratedGradients (right Riemann sum) and
tf-keras-vis' Scorecam, with the same layer, patch, stride, steps and chunk size:

    python scripts/benchmark.py --case perturbation --model efficientnet_lite0 --batch 1 --repeats 2

--case completeness prints Integrated Gradients' completeness error on the sample photos at each number
of steps (how contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS was chosen):

    python scripts/benchmark.py --case completeness --framework torch
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def interleaved_ms(cases: dict, repeats: int, sync=lambda: None) -> dict[str, float]:
    """Median milliseconds of each case, timed round by round (a, b, c, a, b, c, ...) after one
    warm-up each, so that drift in the machine's load falls on every case alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for run in cases.values():  # warm-up: compilation, allocator, caches
        run()
        sync()
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            sync()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def images(batch: int):
    import utils

    photos = [utils.sample_image(name) for name in utils.SAMPLE_NAMES] + [utils.cat_and_coffee()]
    return [photos[i % len(photos)] for i in range(batch)]


def bench_torch(args) -> dict:
    import torch

    import utils.torch as xt

    device = torch.device(args.device) if args.device else xt.best_device()
    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model(args.model, pretrained=False, device=device)
    x = xt.preprocess(images(args.batch), model)
    layer_name = xt.feature_layers(model, x)[-1]
    layer = dict(model.named_modules())[layer_name]
    with torch.no_grad():
        targets = model(x).argmax(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = {}

    def floor_grad_cam():
        captured = []
        handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            logits = model(x)
        finally:
            handle.remove()
        torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), captured[0])

    results["grad_cam floor (forward + backward to the layer)"] = floor_grad_cam
    results["grad_cam ours"] = lambda: xt.grad_cam(model, x, targets.tolist(), layer_name)
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        reference = GradCAM(model=model, target_layers=[layer])
        classes = [ClassifierOutputTarget(int(t)) for t in targets]
        results["grad_cam pytorch-grad-cam 1.5.7"] = lambda: reference(input_tensor=x, targets=classes)
    except ImportError:
        print("pytorch-grad-cam not installed: pip install -e '.[bench]'")
    try:
        from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel, Saliency

        captum_cam = LayerGradCam(model, layer)

        def captum_grad_cam():
            maps = captum_cam.attribute(x, target=targets, relu_attributions=True)
            return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")

        results["grad_cam captum 0.9.0 LayerGradCam"] = captum_grad_cam
    except ImportError:
        print("captum not installed: pip install -e '.[bench]'")
        NoiseTunnel = None

    n, chunk = args.smooth_n, args.smooth_batch

    def floor_smooth_grad():
        for start in range(0, n * args.batch, chunk):
            index = torch.arange(start, min(start + chunk, n * args.batch), device=device) % args.batch
            leaf = (x[index] + 0.1 * torch.randn_like(x[index])).requires_grad_(True)
            torch.autograd.grad(model(leaf).gather(1, targets[index, None]).sum(), leaf)

    results[f"smooth_grad n={n} floor (batched forward + backward)"] = floor_smooth_grad
    results[f"smooth_grad n={n} ours"] = lambda: xt.smooth_grad(model, x, targets.tolist(), n=n, batch_size=chunk)
    if NoiseTunnel is not None:
        tunnel = NoiseTunnel(Saliency(model))
        spread = 0.15 * float(x.max() - x.min())
        results[f"smooth_grad n={n} captum 0.9.0 NoiseTunnel"] = lambda: tunnel.attribute(
            x, nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=max(1, chunk // args.batch),
            stdevs=spread, target=targets)
    timings = {**interleaved_ms({k: v for k, v in results.items() if k.startswith("grad_cam")}, args.repeats, sync),
               **interleaved_ms({k: v for k, v in results.items() if k.startswith("smooth_grad")}, args.repeats, sync)}
    if "grad_cam pytorch-grad-cam 1.5.7" in results:
        reference.activations_and_grads.release()
    return {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "framework": f"torch {torch.__version__}", "results_ms": timings}


def bench_tensorflow(args) -> dict:
    import tensorflow as tf

    import utils.tensorflow as xt

    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model(args.model, pretrained=False)
    x = xt.preprocess(images(args.batch), model)
    layer_name = xt.feature_layers(model, x)[-1]
    targets = tf.argmax(model(x, training=False), axis=1)
    results = {}
    tapped = tf.keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])

    @tf.function
    def floor_grad_cam(batch):
        with tf.GradientTape() as tape:
            activations, logits = tapped(batch, training=False)
            score = tf.reduce_sum(tf.gather(logits, targets, batch_dims=1))
        # Return the activations too: after GAP -> Dense the gradient alone is a constant, and
        # TensorFlow's graph optimiser would drop the whole network.
        return activations, tape.gradient(score, activations)

    results["grad_cam floor (compiled forward + backward to the layer)"] = lambda: [t.numpy() for t in floor_grad_cam(x)]
    results["grad_cam ours"] = lambda: xt.grad_cam(model, x, targets.numpy().tolist(), layer_name)
    n, chunk = args.smooth_n, args.smooth_batch

    @tf.function
    def floor_gradients(batch, classes):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            score = tf.reduce_sum(tf.gather(model(batch, training=False), classes, batch_dims=1))
        return tape.gradient(score, batch)

    def floor_smooth_grad():
        for start in range(0, n * args.batch, chunk):
            index = tf.range(start, min(start + chunk, n * args.batch)) % args.batch
            batch = tf.gather(x, index)
            floor_gradients(batch + 0.1 * tf.random.normal(tf.shape(batch)), tf.gather(targets, index)).numpy()

    results[f"smooth_grad n={n} floor (compiled, batched)"] = floor_smooth_grad
    results[f"smooth_grad n={n} ours"] = lambda: xt.smooth_grad(model, x, targets.numpy().tolist(), n=n, batch_size=chunk)
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.scores import CategoricalScore

        score = CategoricalScore(targets.numpy().tolist())
        gradcam = Gradcam(model, clone=True)
        results["grad_cam tf-keras-vis 0.8.7 Gradcam"] = lambda: gradcam(
            score, x.numpy(), penultimate_layer=layer_name, seek_penultimate_conv_layer=False)
        saliency = Saliency(model, clone=True)
        results[f"smooth_grad n={n} tf-keras-vis 0.8.7 Saliency"] = lambda: saliency(
            score, x.numpy(), smooth_samples=n, smooth_noise=0.15)
    except ImportError:
        print("tf-keras-vis not installed: pip install -e '.[bench]'")
    timings = {**interleaved_ms({k: v for k, v in results.items() if k.startswith("grad_cam")}, args.repeats),
               **interleaved_ms({k: v for k, v in results.items() if k.startswith("smooth_grad")}, args.repeats)}
    return {"device": f"cpu ({tf.config.threading.get_intra_op_parallelism_threads()} intra-op threads)",
            "framework": f"tensorflow {tf.__version__}", "results_ms": timings}


def bench_explorer(framework: str, args) -> dict:
    import importlib

    import utils
    from utils.explorer import Explorer

    xt = importlib.import_module(f"utils.{framework}")
    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model("efficientnet_lite0")
    explorer = Explorer(xt, model, images={"cat_and_coffee": utils.cat_and_coffee()})
    first, second = (int(c) for c in explorer.cache.top()[:2])
    times = {}

    def flip_class():
        explorer.set_class(second if explorer.target == first else first)

    def flip_threshold():
        explorer.threshold.value = 0.5 if explorer.threshold.value == 0.2 else 0.2

    for method in ("cam", "grad_cam"):
        if explorer.method_choice.value != method:
            explorer.set_method(method)  # its first render: computes what the cache keeps (cam: on construction)
        first_render = explorer.last_update_ms
        calls = explorer.cache.model_calls
        # wall time of each change, widget traffic included
        changes = interleaved_ms({f"{method} class change": flip_class, f"{method} threshold change": flip_threshold},
                                 args.repeats)
        assert explorer.cache.model_calls == calls, "a class or threshold change ran the model"
        times.update(changes)
        times[f"{method} first render (runs the model{'; traces it' if framework == 'tensorflow' else ''})"] = first_render
    device = "cpu" if framework == "tensorflow" or str(xt.best_device()) == "cpu" else str(xt.best_device())
    return {"device": f"{device} ({args.threads} threads)", "framework": framework, "results_ms": times}


def bench_table(framework: str, args) -> dict:
    import importlib

    from utils import contract

    xt = importlib.import_module(f"utils.{framework}")
    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model(args.model, pretrained=False) if framework == "tensorflow" else xt.load_model(
        args.model, pretrained=False, device=args.device or xt.best_device())
    x = xt.preprocess(images(args.batch), model)
    cases = {}
    for row in contract.METHODS:  # the explorer's lighter settings for the methods that run the model per channel/patch/step
        options = {"n": args.smooth_n, "batch_size": args.smooth_batch, "seed": 0} if row.name == "smooth_grad" else {}
        options |= dict(row.explorer_settings)
        case = lambda function=getattr(xt, row.name), options=options: function(model, x, **options)  # noqa: E731
        try:
            case()
        except ValueError as error:  # e.g. CAM on VGG16, whose head is not GAP -> linear
            print(f"{framework} {row.name}: skipped ({error})")
            continue
        cases[row.name] = case
    times = interleaved_ms(cases, args.repeats)  # each method returns numpy: the device is synchronised
    device = "cpu" if framework == "tensorflow" else str(xt.model_device(model))
    return {"device": f"{device} ({args.threads} threads), batch {args.batch}", "framework": framework,
            "results_ms": times}


def score_cam_layer(xt, model, x, most_channels: int = 512) -> tuple[str, int]:
    """The last feature map with at most `most_channels` channels (EfficientNet-Lite0: block15, 320) and its
    channel count, the same in both frameworks: Score-CAM's cost per channel is the same at any layer, and
    the head's 1280 channels would take minutes a round on a CPU."""
    import importlib

    methods = importlib.import_module(f"{xt.__name__}.methods")
    for name in reversed(xt.feature_layers(model, x)):
        features, _ = methods._layer_gradients(model, x, methods._targets(model, x, None), name)
        channels = int(features.shape[1 if xt.FRAMEWORK == "torch" else -1])
        if channels <= most_channels:
            return name, channels
    raise ValueError(f"no feature map with at most {most_channels} channels")


def bench_perturbation(framework: str, args) -> dict:
    """Score-CAM, occlusion and Integrated Gradients: ours against the floor (the model runs alone, in the same
    chunks) and the libraries, with the same layer, patch, stride, steps, chunk size, batch and device."""
    import importlib

    from utils import contract

    xt = importlib.import_module(f"utils.{framework}")
    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model(args.model, pretrained=False) if framework == "tensorflow" else xt.load_model(
        args.model, pretrained=False, device=args.device or xt.best_device())
    x = xt.preprocess(images(args.batch), model)
    chunk, patch, stride, steps = args.chunk, args.patch, args.stride, args.steps
    layer, channels = score_cam_layer(xt, model, x)
    if framework == "torch":
        import torch

        with torch.no_grad():
            logits = model(x)
        targets = logits.argmax(1)

        def forwards(count):  # the floor: `count` images through the model in chunks, nothing else
            with torch.no_grad():
                for first in range(0, count, chunk):
                    model(x[torch.arange(first, min(first + chunk, count)) % args.batch])

        def forward_backwards(count):
            for first in range(0, count, chunk):
                index = torch.arange(first, min(first + chunk, count)) % args.batch
                leaf = x[index].clone().requires_grad_(True)
                torch.autograd.grad(model(leaf).gather(1, targets[index, None]).sum(), leaf)
    else:
        import tensorflow as tf
        from utils.tensorflow.methods import _logits

        targets = tf.argmax(_logits(model, x), axis=1)

        def forwards(count):
            for first in range(0, count, chunk):
                _logits(model, tf.gather(x, tf.range(first, min(first + chunk, count)) % args.batch)).numpy()

        @tf.function(reduce_retracing=True)
        def gradients(batch, classes):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                score = tf.reduce_sum(tf.gather(model(batch, training=False), classes, batch_dims=1))
            return tape.gradient(score, batch)

        def forward_backwards(count):
            for first in range(0, count, chunk):
                index = tf.range(first, min(first + chunk, count)) % args.batch
                gradients(tf.gather(x, index), tf.gather(targets, index)).numpy()
    positions = len(contract.patch_corners(int(x.shape[-2] if framework == "torch" else x.shape[1]), patch, stride)) ** 2
    classes = [int(t) for t in targets]
    groups = {"score_cam": {f"floor ({args.batch} x {channels} forward passes)": lambda: forwards(args.batch * channels),
                            "ours": lambda: xt.score_cam(model, x, classes, layer, batch_size=chunk),
                            f"ours top_k={args.top_k}": lambda: xt.score_cam(model, x, classes, layer, top_k=args.top_k,
                                                                            batch_size=chunk)},
              "occlusion": {f"floor ({args.batch} x {positions} forward passes)": lambda: forwards(args.batch * (positions + 1)),
                            "ours": lambda: xt.occlusion(model, x, classes, patch=patch, stride=stride, batch_size=chunk,
                                                         score="logit")},
              "integrated_gradients": {f"floor ({args.batch} x {steps} forward + backward)": lambda: forward_backwards(args.batch * steps),
                                       "ours": lambda: xt.integrated_gradients(model, x, classes, steps=steps,
                                                                               batch_size=chunk)}}
    if framework == "torch":
        try:
            from pytorch_grad_cam import ScoreCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            reference = ScoreCAM(model=model, target_layers=[dict(model.named_modules())[layer]])
            reference.batch_size = chunk
            groups["score_cam"]["pytorch-grad-cam 1.5.7 ScoreCAM"] = lambda: reference(
                input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        except ImportError:
            print("pytorch-grad-cam not installed: pip install -e '.[bench]'")
        try:
            from captum.attr import IntegratedGradients, Occlusion

            grey = torch.as_tensor(contract.baseline_pixels(model, contract.GREY), device=x.device).view(1, 3, 1, 1)
            black = torch.as_tensor(contract.baseline_pixels(model, contract.BLACK), device=x.device).view(1, 3, 1, 1)
            occluder, integrator = Occlusion(model), IntegratedGradients(model)
            groups["occlusion"]["captum 0.9.0 Occlusion"] = lambda: occluder.attribute(
                x, sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride), baselines=grey,
                target=targets, perturbations_per_eval=chunk)
            groups["integrated_gradients"]["captum 0.9.0 IntegratedGradients"] = lambda: integrator.attribute(
                x, baselines=black.expand_as(x), target=targets, n_steps=steps, method="riemann_right",
                internal_batch_size=chunk)
        except ImportError:
            print("captum not installed: pip install -e '.[bench]'")
    else:
        try:
            from tf_keras_vis.scorecam import Scorecam
            from tf_keras_vis.utils.scores import CategoricalScore

            scorecam = Scorecam(model, clone=True)
            groups["score_cam"]["tf-keras-vis 0.8.7 Scorecam"] = lambda: scorecam(
                CategoricalScore(classes), x.numpy(), penultimate_layer=layer, seek_penultimate_conv_layer=False,
                batch_size=chunk)
        except ImportError:
            print("tf-keras-vis not installed: pip install -e '.[bench]'")
    times = {}
    for method, cases in groups.items():
        times.update({f"{method} {name}": value for name, value in interleaved_ms(cases, args.repeats).items()})
    device = "cpu" if framework == "tensorflow" else str(xt.model_device(model))
    return {"device": f"{device} ({args.threads} threads), batch {args.batch}, {args.chunk} images per pass, "
                      f"Score-CAM at {layer}", "framework": framework, "results_ms": times}


def bench_completeness(framework: str, args) -> dict:
    """Integrated Gradients' completeness error, sum(map) / (F(x) - F(black)) - 1, on each sample photo (its
    top-1 class, pretrained EfficientNet-Lite0) at each number of steps: how the default steps were chosen."""
    import importlib

    import utils
    from utils import contract

    xt = importlib.import_module(f"utils.{framework}")
    xt.seed_everything(0, threads=args.threads)
    model = xt.load_model("efficientnet_lite0")
    photos = [utils.sample_image(name) for name in utils.SAMPLE_NAMES]
    x = xt.preprocess(photos, model)
    black = xt.preprocess([np.zeros_like(photos[0])] * len(photos), model)
    scores = np.asarray(_logits(xt, model, x)), np.asarray(_logits(xt, model, black))
    targets = scores[0].argmax(axis=1)
    gap = scores[0][np.arange(len(targets)), targets] - scores[1][np.arange(len(targets)), targets]
    errors = {}
    for steps in args.steps_list:
        maps = xt.integrated_gradients(model, x, targets.tolist(), steps=steps, normalize=False)
        errors[str(steps)] = (maps.sum(axis=(1, 2)) / gap - 1).round(4).tolist()
    return {"device": f"{args.threads} threads", "framework": framework, "photos": list(utils.SAMPLE_NAMES),
            "default_steps": contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS, "relative_error": errors}


def _logits(xt, model, x):
    if xt.FRAMEWORK == "torch":
        import torch

        with torch.no_grad():
            return model.eval()(x).cpu().numpy()
    return model(x, training=False).numpy()


def report_completeness(name: str, result: dict) -> None:
    print(f"\nIntegrated Gradients' completeness, {name}: sum(map) / (F(x) - F(black)) - 1 on {result['photos']}")
    for steps, errors in result["relative_error"].items():
        print(f"  {steps:>5} steps: " + "  ".join(f"{e:+7.1%}" for e in errors) + f"   largest {max(map(abs, errors)):.1%}")


def report_perturbation(name: str, result: dict) -> None:
    print(f"\nScore-CAM, occlusion, Integrated Gradients, {name}, on {result['device']}: median ms")
    rows = result["results_ms"]
    for key, value in rows.items():
        method = key.split()[0]
        ours = rows[f"{method} ours"]
        print(f"  {key:62s} {value:10.1f} ms   ours / this = {ours / value:5.2f}")


def report_table(name: str, result: dict) -> None:
    print(f"\nevery method of the table, {name}, on {result['device']}: median ms")
    rows = result["results_ms"]
    for key, value in rows.items():
        print(f"  {key:20s} {value:9.1f} ms   {value / rows['grad_cam']:5.2f} x grad_cam")


def report_explorer(name: str, result: dict) -> None:
    print(f"\nexplorer, {name}, on {result['device']}: median wall time of each change")
    for key, value in result["results_ms"].items():
        print(f"  {key:52s} {value:9.1f} ms")


def report(name: str, result: dict) -> None:
    print(f"\n{name} on {result['device']}, {result['framework']}")
    rows = result["results_ms"]
    for method in ("grad_cam", "smooth_grad"):
        mine = [v for k, v in rows.items() if k.startswith(method) and k.endswith("ours")]
        for key, value in rows.items():
            if key.startswith(method):
                ratio = f"  ours / this = {mine[0] / value:.2f}" if mine and not key.endswith("ours") else ""
                print(f"  {key:58s} {value:9.1f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["torch", "tensorflow", "both"], default="both")
    parser.add_argument("--case", choices=["methods", "explorer", "table", "perturbation", "completeness"],
                        default="methods",
                        help="methods: Grad-CAM and SmoothGrad against floor and libraries (default); "
                             "explorer: update times of the interactive explorer; table: every method of the "
                             "table of methods beside Grad-CAM; perturbation: Score-CAM, occlusion and "
                             "Integrated Gradients against floor and libraries; completeness: Integrated "
                             "Gradients' completeness error against the steps")
    parser.add_argument("--chunk", type=int, default=4, help="perturbation: images per forward pass (4: the CPU default)")
    parser.add_argument("--patch", type=int, default=32, help="perturbation: occlusion patch")
    parser.add_argument("--stride", type=int, default=16, help="perturbation: occlusion stride")
    parser.add_argument("--steps", type=int, default=32, help="perturbation: Integrated Gradients steps")
    parser.add_argument("--top-k", type=int, default=32, help="perturbation: Score-CAM's top-k channels")
    parser.add_argument("--steps-list", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512],
                        help="completeness: the numbers of steps to try")
    parser.add_argument("--model", default="resnet50", help="resnet50 (default), vgg16 or efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--smooth-n", type=int, default=10, help="SmoothGrad samples (the issue quotes 10 on CPU, 50 on GPU)")
    parser.add_argument("--smooth-batch", type=int, default=20, help="images per forward/backward in SmoothGrad")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default=None, help="torch device (default: the best one)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    results = {"args": vars(args)}
    if args.case in ("explorer", "table", "perturbation", "completeness"):
        bench, report_case = {"explorer": (bench_explorer, report_explorer), "table": (bench_table, report_table),
                              "perturbation": (bench_perturbation, report_perturbation),
                              "completeness": (bench_completeness, report_completeness)}[args.case]
        for framework in ("torch", "tensorflow"):  # torch first: it must be imported before tensorflow
            if args.framework in (framework, "both"):
                results[framework] = bench(framework, args)
                report_case(framework, results[framework])
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
        return
    if args.framework in ("torch", "both"):  # torch first: it must be imported before tensorflow
        results["torch"] = bench_torch(args)
        report("torch", results["torch"])
    if args.framework in ("tensorflow", "both"):
        results["tensorflow"] = bench_tensorflow(args)
        report("tensorflow", results["tensorflow"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
