"""Seeing what a CNN looks at: the course's shared package.

`import utils` loads the framework-free core (images, labels, the synthetic shapes, boxes and
localization, the evaluation metrics, plotting, the interactive explorer) and neither PyTorch nor TensorFlow. The two backends share their public
names, in the style of d2l:

    from utils import torch as xt        # or
    from utils import tensorflow as xt

Import the PyTorch backend before the TensorFlow one when a process uses both (ARCHITECTURE.md, "Import order").
"""
from .images import SAMPLE_NAMES, as_rgb_uint8, cat_and_coffee, load_image, prepare_images, sample_image, sample_images
from .labels import class_index, imagenet_classes
from . import metrics
from .diagrams import show_diagram
from .explorer import Explorer, explore
from . import exercises
from .localization import LocalizationDataset, box_from_heatmap, iou, localization_accuracy, mass_fraction
from .metrics import bootstrap_interval, perturbation_curves, pointing_game, rank_correlation
from .models import EMBEDDED_MODEL, MODEL_NAMES, Predictions, Preprocessing
from .pets import load_pets
from .plotting import draw_box, overlay, show_grid, show_heatmap, show_predictions
from .shapes import SHAPE_CLASSES, make_shapes

REPO_URL = "https://github.com/seeing-cnns/seeing-cnns"

__all__ = [
    "EMBEDDED_MODEL", "Explorer", "MODEL_NAMES", "Predictions", "Preprocessing", "REPO_URL", "SAMPLE_NAMES",
    "LocalizationDataset", "SHAPE_CLASSES", "as_rgb_uint8", "bootstrap_interval", "box_from_heatmap", "cat_and_coffee", "class_index",
    "draw_box", "exercises", "explore", "imagenet_classes", "iou", "load_image", "load_pets", "localization_accuracy",
    "make_shapes", "mass_fraction", "metrics", "overlay", "perturbation_curves", "pointing_game", "prepare_images",
    "rank_correlation", "sample_image", "sample_images", "show_diagram", "show_grid", "show_heatmap", "show_predictions",
]
