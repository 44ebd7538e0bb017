"""The command line: `python -m utils explain IMAGE... --method grad-cam --out DIR`.

For every image file it writes one PNG per method and class: the heatmap over the photo (or, for the
two Guided methods, their signed RGB map) with the CAM paper's box drawn on it. Everything the
command does lives in functions here that tests call directly; the framework (utils.torch or
utils.tensorflow) is imported only once `--framework` has been read, and only after the class names
have been checked, so a typo costs no framework start-up.

Exit status: 0 when every file was written, 1 when some input file failed or an output could not be
written (the others are still written), 2 for a usage or configuration error (bad option, unknown
class or layer, model not available), which stops the run; 130 on Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import contract as _contract
from .labels import class_index, imagenet_classes
from .models import EMBEDDED_MODEL, MODEL_NAMES

PROG = "python -m utils"

# The command line's spelling of each method (grad-cam, smoothgrad, ...), in the course's order: the
# one table of methods (utils.contract.METHODS) says which take a layer and how each is drawn.
METHODS = tuple(row.cli_name for row in _contract.METHODS)
LAYER_METHODS = tuple(row.cli_name for row in _contract.METHODS if row.takes_layer)
FRAMEWORKS = ("torch", "tensorflow")

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE = 0, 1, 2



# -------------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class TopK:
    """`--class top-k`: the k most probable classes of each image."""

    k: int


def parse_class(text: str, classes: Sequence[str] | None = None):
    """One `--class` value -> a class index (int) or TopK.

    "top-3" (or "top3"): each image's three most probable classes; "285": class 285; anything else
    is an ImageNet class name, exact or ignoring case (utils.class_index, whose error suggests
    close matches).
    """
    classes = list(imagenet_classes() if classes is None else classes)
    text = text.strip()
    match = re.fullmatch(r"top-?(\d+)", text, flags=re.IGNORECASE)
    if match:
        k = int(match.group(1))
        if not 1 <= k <= len(classes):
            raise ValueError(f"{text!r}: k must be between 1 and {len(classes)}")
        return TopK(k)
    if re.fullmatch(r"\d+", text):
        index = int(text)
        if index >= len(classes):
            raise ValueError(f"class index {index} is out of range: the model has {len(classes)} classes "
                             f"(0 to {len(classes) - 1})")
        return index
    return class_index(text, classes)


def parse_methods(values: Sequence[str] | None) -> list[str]:
    """`--method` values (repeatable, comma-separated, or "all") -> command-line method names, in order,
    no repeats. Each name is looked up in the table of methods (grad-cam, grad_cam and Grad-CAM alike)."""
    names: list[str] = []
    for value in values or ["grad-cam"]:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name.lower() == "all":
                chosen = list(METHODS)
            else:
                try:
                    chosen = [_contract.method(name).cli_name]
                except ValueError:
                    raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)} or all") from None
            names += [method for method in chosen if method not in names]
    if not names:
        raise ValueError(f"no method given; choose from {', '.join(METHODS)} or all")
    return names


def _fraction(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [0, 1], got {text!r}") from None
        if not 0 <= value <= 1:
            raise argparse.ArgumentTypeError(f"{name} must be in [0, 1], got {text}")
        return value
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _seed(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


EXPLAIN_DESCRIPTION = """\
Explain what the ImageNet classifier looks at in each IMAGE file: for every image, method and class
write one PNG into --out, at the image's own size, with the CAM paper's box drawn in lime and
labelled with the class name and its probability.

{drawing}

The box: keep the pixels of the map that reach --threshold times its maximum, take the largest
connected region, draw its bounding box (Zhou et al. 2016; utils.box_from_heatmap).""".format(drawing=textwrap.fill(
    f"{', '.join(row.title for row in _contract.METHODS if row.output == _contract.HEATMAP)} are drawn as a "
    "heatmap (jet colour map) over the photo; "
    f"{' and '.join(row.title for row in _contract.METHODS if row.output == _contract.SIGNED_RGB)} as their "
    "signed RGB map (grey = zero gradient), as in the papers. The pixel-level maps "
    f"({', '.join(row.cli_name for row in _contract.METHODS if row.pixel_level)}) are clipped at the 99th "
    "percentile of their magnitude before display and box, so a few extreme pixels do not set the scale (as "
    "the explorer and notebooks 04 and 05 show them).", width=100))

EXPLAIN_EPILOG = """\
output files:
  OUT/STEM_METHOD_INDEX-CLASS.png, e.g. explanations/cat_grad-cam_285-egyptian-cat.png for cat.jpg,
  Grad-CAM and ImageNet class 285 "Egyptian cat". STEM is the input's file name without its
  extension; inputs that share a stem get -2, -3, ... in the order given. Existing files are
  overwritten. Each written path is printed on stdout, one a line.

errors and exit status:
  A file that cannot be read (missing, a directory, not an image, corrupt, too small) gets a
  one-line message on stderr and the other files are still processed.
  0  every file was written
  1  at least one input file failed, or an output could not be written (the others were written)
  2  usage or configuration error: unknown option, class, layer or model, or --out is not a
     folder; nothing more is processed

environment:
  COURSE_THREADS  CPU threads for the framework (default: every core)

examples:
  python -m utils explain cat.jpg dog.png --method grad-cam --out explanations
  python -m utils explain photos/*.jpg --method cam,saliency --class top-3 --framework tensorflow
  python -m utils explain cat.jpg --class "tiger cat" --class 285 --layer features.block15
  python -m utils explain cat.jpg --method smoothgrad --n 25 --sigma 0.1 --seed 1"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Seeing what a CNN looks at: the course's command line.",
        epilog=f"Run '{PROG} explain --help' for the options of the explain command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    explain = commands.add_parser(
        "explain", help="write heatmap overlays with boxes for image files",
        description=EXPLAIN_DESCRIPTION, epilog=EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.explain_parser = explain  # for check_options' error messages
    explain.add_argument("images", nargs="+", metavar="IMAGE",
                         help="image files (PNG, JPEG, ... anything Pillow reads)")
    explain.add_argument(
        "-m", "--method", action="append", metavar="METHOD",
        help=f"explanation method: {', '.join(METHODS)}, or all; repeat the option or separate "
             "with commas for several (default: grad-cam)")
    explain.add_argument(
        "-c", "--class", dest="classes", action="append", metavar="CLASS",
        help="class to explain: an ImageNet class name (e.g. 'Egyptian cat'; case is ignored), its "
             "index 0-999, or top-K for each image's K most probable classes; repeat for several "
             "(default: top-1, each image's most probable class)")
    explain.add_argument(
        "-l", "--layer", default=None,
        help=f"feature-map layer for {', '.join(LAYER_METHODS)}, named as the framework names it "
             "(e.g. features.head in PyTorch, head_relu in TensorFlow); an unknown name lists the "
             "valid ones (default: the last convolutional feature map)")
    explain.add_argument(
        "-t", "--threshold", type=_fraction("--threshold"), default=0.2,
        help="box threshold as a fraction of the map's maximum, in [0, 1] (default: %(default)s, the "
             "CAM paper's)")
    explain.add_argument(
        "-a", "--alpha", type=_fraction("--alpha"), default=0.5,
        help="opacity of the heatmap over the photo, in [0, 1]; not used by the guided methods "
             "(default: %(default)s)")
    explain.add_argument(
        "--n", type=_positive_int, default=_contract.SMOOTH_GRAD_DEFAULT_N,
        help="smoothgrad: number of noisy copies averaged (default: %(default)s)")
    explain.add_argument(
        "--sigma", type=_non_negative_float, default=_contract.SMOOTH_GRAD_DEFAULT_SIGMA,
        help="smoothgrad: noise standard deviation as a fraction of each input's range "
             "max(x) - min(x) (default: %(default)s)")
    explain.add_argument(
        "--seed", type=_seed, default=0,
        help="smoothgrad: seed of the noise, the same noise in both frameworks; 'none' for fresh "
             "noise on every run (default: %(default)s)")
    explain.add_argument(
        "--top-k", type=_positive_int, default=None,
        help="score-cam: keep the k channels of largest variance (Faster Score-CAM; one model run per "
             "kept channel) instead of all of them (default: all)")
    explain.add_argument(
        "--patch", type=_positive_int, default=32, help="occlusion: side of the grey square in pixels of the "
                                                        "model's input (default: %(default)s)")
    explain.add_argument(
        "--stride", type=_positive_int, default=16, help="occlusion: step between patches, at most --patch "
                                                         "(default: %(default)s)")
    explain.add_argument(
        "--steps", type=_positive_int, default=_contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS,
        help="integrated-gradients: points on the path from the black image, one model run each; "
             "the default keeps the attributions within 5%% of F(x) - F(black) on the sample photos "
             "(default: %(default)s)")
    explain.add_argument(
        "-f", "--framework", choices=FRAMEWORKS, default="torch",
        help="which backend computes the maps: torch (utils.torch) or tensorflow (utils.tensorflow) "
             "(default: %(default)s)")
    explain.add_argument(
        "--model", default=EMBEDDED_MODEL, type=str.lower, choices=MODEL_NAMES,
        help=f"ImageNet classifier; {EMBEDDED_MODEL} is embedded and works offline, the others come "
             "from the framework's model zoo and need a network connection the first time "
             "(default: %(default)s)")
    explain.add_argument(
        "-o", "--out", type=Path, default=Path("explanations"),
        help="output folder, created if missing (default: %(default)s)")
    explain.add_argument(
        "-q", "--quiet", action="store_true",
        help="print neither the written paths (stdout) nor the progress bar; errors are still printed")
    explain.add_argument(
        "--no-progress", action="store_true",
        help="no progress bar (it is drawn on stderr only when stderr is a terminal and there are "
             "several files)")
    return parser


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turn the option strings into methods and classes; parser.error (exit 2) on a bad one."""
    explain = parser.explain_parser
    try:
        args.methods = parse_methods(args.method)
    except ValueError as error:
        explain.error(str(error))
    try:
        args.targets = [parse_class(text) for text in (args.classes or ["top-1"])]
    except (ValueError, FileNotFoundError) as error:
        explain.error(str(error))
    if args.layer is not None and not any(method in LAYER_METHODS for method in args.methods):
        explain.error(f"--layer applies only to {', '.join(LAYER_METHODS)}; "
                      f"the methods chosen are {', '.join(args.methods)}")
    if args.out.exists() and not args.out.is_dir():
        explain.error(f"--out {args.out} exists and is not a folder")


# -------------------------------------------------------------------------------------------------
# Names, classes and pictures (framework-free)


def slug(text: str) -> str:
    """'Egyptian cat' -> 'egyptian-cat': lower case, runs of other characters become one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "class"


def output_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The stem of each input file; repeated stems get -2, -3, ... in the order given."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = Path(path).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def output_name(stem: str, method: str, index: int, class_name: str) -> str:
    """'cat', 'grad-cam', 285, 'Egyptian cat' -> 'cat_grad-cam_285-egyptian-cat.png'."""
    return f"{stem}_{method}_{index}-{slug(class_name)}.png"


def image_classes(targets: Sequence, probs: np.ndarray) -> list[int]:
    """The classes to explain for one image: explicit indices and its top-k, in order, no repeats."""
    ranked = np.argsort(-probs, kind="stable")
    chosen: list[int] = []
    for target in targets:
        new = [int(i) for i in ranked[:target.k]] if isinstance(target, TopK) else [int(target)]
        chosen += [index for index in new if index not in chosen]
    return chosen


def render(image: np.ndarray, heatmap: np.ndarray, method: str, threshold: float = 0.2,
           alpha: float = 0.5, label: str | None = None) -> tuple[np.ndarray, tuple]:
    """The finished (H, W, 3) uint8 picture for one image, method and class, and its box: the course's one
    way of drawing a map (utils.plotting.render_map), at the image's own size."""
    from .plotting import render_map

    return render_map(image, heatmap, method, threshold, alpha, label)


# -------------------------------------------------------------------------------------------------
# Progress on stderr


def progress_bar(total: int, stream=None, enabled: bool | None = None):
    """tqdm's bar over the input files on `stream` (stderr), drawn only when enabled (by default: the
    stream is a terminal and there is more than one file). Print other lines with `tqdm.write`, which
    clears the bar first and redraws it after."""
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stderr
    if enabled is None:
        enabled = total > 1 and getattr(stream, "isatty", lambda: False)()
    return tqdm(total=total, file=stream, disable=not enabled, unit="file", leave=False, dynamic_ncols=True)


def _write(bar, text: str, stream) -> None:
    """One line on `stream`, the bar (if drawn) cleared before and redrawn after."""
    from tqdm import tqdm

    if bar.disable:
        stream.write(text + "\n")
        stream.flush()
    else:
        tqdm.write(text, file=stream)


# -------------------------------------------------------------------------------------------------
# The explain command


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def load_backend(framework: str):
    """Import utils.torch or utils.tensorflow (only now), with the thread count of COURSE_THREADS."""
    import importlib

    threads = os.environ.get("COURSE_THREADS")
    if threads:  # read by the frameworks' thread pools when they load
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ.setdefault(var, threads)
    backend = importlib.import_module(f"utils.{framework}")
    backend.seed_everything(0)  # threads: $COURSE_THREADS or every core; before the first op
    return backend


def explain_files(args: argparse.Namespace, stdout=None, stderr=None) -> int:
    """Run `explain` on checked options (see check_options); returns the exit status."""
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    xt = load_backend(args.framework)
    try:
        model = xt.load_model(args.model)
    except (RuntimeError, ValueError, OSError) as error:
        stderr.write(f"{PROG} explain: error: {one_line(error)}\n")
        return EXIT_USAGE
    names = getattr(model, "class_names", None) or imagenet_classes()
    args.out.mkdir(parents=True, exist_ok=True)

    from .images import load_image
    from PIL import Image

    progress = progress_bar(len(args.images), stderr, enabled=False if (args.quiet or args.no_progress) else None)
    failed = 0
    try:
        for path, stem in zip(args.images, output_stems(args.images)):
            progress.set_postfix_str(Path(path).name)
            try:
                image = load_image(path)
            except Exception as error:  # noqa: BLE001 - any unreadable file: report it, go on
                message = one_line(error)
                if str(path) not in message:
                    message = f"{path}: {message}"
                _write(progress, f"{PROG} explain: skipped: {message}", stderr)
                failed += 1
                progress.update()
                continue
            x = xt.preprocess(image, model)
            probs = np.asarray(xt.probabilities(model, x))[0]
            classes = image_classes(args.targets, probs)
            batch = x if len(classes) == 1 else xt.preprocess([image] * len(classes), model)
            for method in args.methods:
                try:
                    maps = compute(xt, model, batch, classes, method, args)
                except (ValueError, TypeError, RuntimeError) as error:
                    _write(progress, f"{PROG} explain: error: {method}: {one_line(error)}", stderr)
                    return EXIT_USAGE
                for heatmap, index in zip(maps, classes):
                    label = f"{names[index]}: {probs[index]:.2f}"
                    picture, _ = render(image, heatmap, method, args.threshold, args.alpha, label)
                    target = args.out / output_name(stem, method, index, names[index])
                    try:
                        Image.fromarray(picture).save(target)
                    except OSError as error:
                        _write(progress, f"{PROG} explain: could not write {target}: {one_line(error)}", stderr)
                        failed += 1
                        continue
                    if not args.quiet:
                        _write(progress, str(target), stdout)
            progress.update()
    finally:
        progress.close()
    return EXIT_FILE_FAILED if failed else EXIT_OK


def compute(xt, model, batch, classes: list[int], method: str, args: argparse.Namespace) -> np.ndarray:
    """One backend call: the maps of `method` for the batch (one copy of the image per class)."""
    row = _contract.method(method)
    kwargs = {}
    if row.takes_layer and args.layer is not None:
        kwargs["layer"] = args.layer
    if row.name == "smooth_grad":
        kwargs.update(n=args.n, sigma=args.sigma, seed=args.seed)
    elif row.name == "score_cam":
        kwargs.update(top_k=args.top_k)
    elif row.name == "occlusion":
        kwargs.update(patch=args.patch, stride=args.stride)
    elif row.name == "integrated_gradients":
        kwargs.update(steps=args.steps)
    return np.asarray(getattr(xt, row.name)(model, batch, target=classes, **kwargs))


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point of `python -m utils`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    check_options(parser, args)
    try:
        return explain_files(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG} explain: interrupted\n")
        return 130
