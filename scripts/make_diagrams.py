"""Draw the course's diagrams into figures/<name>.png (matplotlib only: no model, no network).

    python scripts/make_diagrams.py                 # every diagram
    python scripts/make_diagrams.py --only cam_pipeline
    python scripts/make_diagrams.py --out /tmp/figs # somewhere else than figures/

Notebooks show them with `utils.show_diagram("<name>")`. DIAGRAMS below is the one list of names
(tests/test_diagrams.py imports it). Every picture is deterministic: the feature maps, gradients and
textures are small numpy patterns, the photo is scikit-image's bundled `chelsea`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "figures"
DPI = 150

# One palette for every diagram.
FORWARD = "#1f5fa8"      # forward pass: arrows, boxes
BACKWARD = "#c8401a"     # backward pass: gradients
NEUTRAL = "#444444"      # other arrows (upsample, overlay, combine)
BOX_FILL = "#eef3fa"     # a layer / operation box on the forward side
BACK_FILL = "#fbefe9"    # a box on the backward side
NOTE_FILL = "#fff8dc"    # a boxed remark
ZERO_FILL = "#d9d9d9"    # a zeroed cell in a number grid
ZERO_TEXT = "#8a8a8a"
POS_FILL = "#dcebfa"     # a positive number
NEG_FILL = "#fadcdc"     # a negative number
HEAT = "jet"             # heat maps, as utils.plotting overlays them
SIGNED = "RdBu_r"        # signed maps (gradients)

plt.rcParams.update({
    "font.size": 14,
    "mathtext.fontset": "dejavusans",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
})


# ---------------------------------------------------------------------------------------------------
# Drawing helpers: one axes per figure spanning it, in data units with equal aspect.

def canvas(width: float, height: float, units_per_inch: float = 2.0):
    """A figure of width x height inches whose single axes runs 0..width*u, 0..height*u."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width * units_per_inch)
    ax.set_ylim(0, height * units_per_inch)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(ax, x, y, w, h, text="", fc=BOX_FILL, ec=FORWARD, fontsize=14, lw=1.6, **kw):
    """A rounded box with its lower-left corner at (x, y), text centred."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                fc=fc, ec=ec, lw=lw, zorder=2))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, zorder=3, **kw)


def arrow(ax, start, end, color=FORWARD, lw=2.2, rad=0.0, style="-|>", mutation=18, ls="-"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=mutation, color=color,
                                 lw=lw, connectionstyle=f"arc3,rad={rad}", zorder=4, linestyle=ls,
                                 shrinkA=2, shrinkB=2))


def label(ax, x, y, text, fontsize=14, color="black", ha="center", va="center", **kw):
    ax.text(x, y, text, fontsize=fontsize, color=color, ha=ha, va=va, zorder=5, **kw)


def heat(ax, array, x, y, w, h, cmap=HEAT, vmin=None, vmax=None, grid=True, edge="black", interpolation="nearest"):
    """Show `array` in the rectangle (x, y, w, h), optionally with cell lines."""
    array = np.asarray(array)
    ax.imshow(array, extent=(x, x + w, y, y + h), cmap=cmap, vmin=vmin, vmax=vmax,
              interpolation=interpolation, zorder=3, aspect="auto")
    if grid and array.ndim == 2:
        rows, cols = array.shape
        for i in range(1, cols):
            ax.plot([x + i * w / cols] * 2, [y, y + h], color="white", lw=0.6, alpha=0.7, zorder=3.5)
        for j in range(1, rows):
            ax.plot([x, x + w], [y + j * h / rows] * 2, color="white", lw=0.6, alpha=0.7, zorder=3.5)
    ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=edge, lw=1.2, zorder=3.6))


def stack(ax, maps, x, y, size, offset=0.18, cmap=HEAT, vmin=None, vmax=None, edge="black"):
    """A pile of square maps, the first in front, the others stepping up and to the right."""
    for i in reversed(range(len(maps))):
        heat(ax, maps[i], x + i * offset, y + i * offset, size, size, cmap=cmap, vmin=vmin, vmax=vmax, edge=edge)
    return x + (len(maps) - 1) * offset + size, y + (len(maps) - 1) * offset + size  # top-right corner


def number_grid(ax, values, x, y, cell, keep=None, fontsize=15, fmt="{:g}"):
    """A grid of numbers, lower-left at (x, y); cells where keep is False are greyed (zeroed)."""
    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            v = values[r, c]
            zeroed = keep is not None and not keep[r, c]
            if zeroed or v == 0:
                fc, tc, text = ZERO_FILL, ZERO_TEXT, "0"
            else:
                fc, tc, text = (POS_FILL if v > 0 else NEG_FILL), "black", fmt.format(v).replace("-", "\u2212")
            cx, cy = x + c * cell, y + (rows - 1 - r) * cell
            ax.add_patch(Rectangle((cx, cy), cell, cell, fc=fc, ec="white", lw=2, zorder=2))
            ax.text(cx + cell / 2, cy + cell / 2, text, ha="center", va="center", fontsize=fontsize,
                    color=tc, zorder=3)
    ax.add_patch(Rectangle((x, y), cols * cell, rows * cell, fill=False, ec="#555555", lw=1.2, zorder=3))


def blob(size, cy, cx, sigma):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def bilinear(array, out):
    """Bilinear upsampling of a square array to out x out (align_corners=False), numpy only."""
    n = array.shape[0]
    pos = (np.arange(out) + 0.5) * n / out - 0.5
    pos = np.clip(pos, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    t = pos - i0
    rows = array[i0] * (1 - t)[:, None] + array[i1] * t[:, None]
    return rows[:, i0] * (1 - t)[None, :] + rows[:, i1] * t[None, :]


def cat_photo(size=224):
    """scikit-image's chelsea (bundled with the package), cropped square around the cat, as floats."""
    from skimage import data, transform
    photo = data.chelsea()  # 300 x 451
    crop = photo[:, 60:360]
    return transform.resize(crop, (size, size), anti_aliasing=True)


def overlay(image, heatmap, alpha=0.5):
    colour = matplotlib.colormaps[HEAT](heatmap)[..., :3]
    return (1 - alpha) * image + alpha * colour


def normalise(m):
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


# Synthetic feature maps shared by the CAM and Grad-CAM pictures: 7 x 7, three channels.
H = 7


def feature_maps():
    f1 = blob(H, 2.3, 2.8, 1.3)                        # the cat's face
    f2 = 0.9 * blob(H, 4.8, 3.5, 1.6)                  # the cat's body
    f3 = 0.8 * blob(H, 1.0, 5.8, 1.2) + 0.1            # background, top right
    return np.stack([f1, f2, f3])


CLASS_WEIGHTS = np.array([1.2, 0.7, -0.8])             # w_k^c for the class "cat"


# ---------------------------------------------------------------------------------------------------
# 1. flatten_vs_gap

def draw_flatten_vs_gap():
    fig, ax = canvas(10, 7.4)
    rng = np.random.default_rng(1)
    centres = [(1.0, 1.5), (3.2, 2.8), (2.0, 3.6), (0.8, 3.9)]
    scales = [1.0, 0.45, 0.8, 0.25]  # different averages, so the pooled numbers differ
    maps = [s * normalise(blob(5, cy, cx, 1.1) + 0.25 * rng.random((5, 5))) for s, (cy, cx) in zip(scales, centres)]
    W = 20
    y0 = 1.4  # everything sits this far above the notes
    ax.plot([W / 2, W / 2], [0.3, 14.2], color="#bbbbbb", lw=1.5, ls="--")
    for panel, x0 in (("flatten", 0.0), ("gap", W / 2)):
        cx = x0 + W / 4
        title = "Flatten head" if panel == "flatten" else "Global average pooling head"
        label(ax, cx, 14.4, title, fontsize=18, weight="bold")
        stack(ax, maps, cx - 1.9, 9.2 + y0, 2.2, offset=0.3, vmin=0, vmax=1)
        label(ax, cx + 1.6, 10.2 + y0, "$K$ feature maps\n$f_k$, each $h\\times w$", fontsize=14, ha="left")
        arrow(ax, (cx - 0.8, 9.05 + y0), (cx - 0.8, 7.95 + y0))
        if panel == "flatten":
            label(ax, cx - 0.6, 8.5 + y0, "flatten", fontsize=14, ha="left", color=FORWARD)
            n = 8  # values shown per channel
            vals = np.concatenate([m.ravel()[6:6 + n] for m in maps])
            heat(ax, vals[None, :], 0.6, 7.25 + y0, 8.8, 0.5, vmin=0, vmax=1)
            for k in range(1, len(maps)):
                xk = 0.6 + k * 8.8 / len(maps)
                ax.plot([xk, xk], [7.1 + y0, 7.9 + y0], color="black", lw=2.2, zorder=4)
            label(ax, cx, 6.75 + y0, "$K\\cdot h\\cdot w$ numbers (e.g. $512\\cdot 7\\cdot 7 = 25\\,088$)",
                  fontsize=13)
            arrow(ax, (cx, 6.4 + y0), (cx, 5.45 + y0))
            box(ax, x0 + 0.7, 3.9 + y0, 8.6, 1.5,
                "linear layer: one weight per class,\nper channel and per position $(x, y)$", fontsize=14)
            arrow(ax, (cx, 3.85 + y0), (cx, 2.95 + y0))
            label(ax, cx, 2.55 + y0, "class scores $S_c$", fontsize=15)
            box(ax, x0 + 0.4, 0.6, 9.2, 2.1,
                "$S_c = \\sum_{k,x,y}\\, W^{c}_{k,x,y}\\, f_k(x,y) + b_c$\n"
                "a weight for every place: $C\\cdot K\\cdot h\\cdot w$ weights",
                fc=NOTE_FILL, ec="#c9a227", fontsize=14)
        else:
            label(ax, cx - 0.6, 8.5 + y0, "average each map", fontsize=14, ha="left", color=FORWARD)
            vals = np.array([m.mean() for m in maps])
            heat(ax, vals[None, :], cx - 1.1, 7.25 + y0, 2.2, 0.5, vmin=0, vmax=1)
            label(ax, cx, 6.75 + y0, "$K$ numbers $F_k = \\frac{1}{Z}\\sum_{x,y} f_k(x,y)$,  $Z = h\\,w$",
                  fontsize=13)
            arrow(ax, (cx, 6.2 + y0), (cx, 5.45 + y0))
            box(ax, x0 + 0.7, 3.9 + y0, 8.6, 1.5,
                "linear layer: $K$ weights $w_k^c$ per class,\nthe same at every position", fontsize=14)
            arrow(ax, (cx, 3.85 + y0), (cx, 2.95 + y0))
            label(ax, cx, 2.55 + y0, "class scores $S_c$", fontsize=15)
            box(ax, x0 + 0.4, 0.15, 9.2, 2.95,
                "$S_c = \\sum_k w_k^c F_k + b_c = \\frac{1}{Z}\\sum_{x,y} M_c(x,y) + b_c$\n"
                "where $M_c(x,y) = \\sum_k w_k^c f_k(x,y)$ is the CAM:\n"
                "the score is the average of one map per class",
                fc=NOTE_FILL, ec="#c9a227", fontsize=14)
    return fig


# ---------------------------------------------------------------------------------------------------
# 2. cam_pipeline

def draw_cam_pipeline():
    fig, ax = canvas(10, 4.6)
    f = feature_maps()
    m = np.einsum("k,khw->hw", CLASS_WEIGHTS, f)
    size = 1.7
    ys = [6.0, 3.5, 0.6]
    names = ["$f_1$", "$f_2$", "$f_K$"]
    for i, (y, name) in enumerate(zip(ys, names)):
        k = name[3]
        heat(ax, normalise(f[i]), 0.9, y, size, size, vmin=0, vmax=1)
        label(ax, 0.45, y + size / 2, name, fontsize=16)
        label(ax, 2.85, y + size / 2, f"$\\times\\ w_{k}^c = {CLASS_WEIGHTS[i]:g}$", fontsize=15, color=FORWARD,
              ha="left")
        arrow(ax, (5.9, y + size / 2), (6.85, 4.35 + 0.25 * (1 - i)), color=FORWARD)
    label(ax, 1.75, 2.95, "$\\vdots$", fontsize=18)
    label(ax, 0.2, 8.55, "feature maps ($h\\times w$)", fontsize=14, ha="left")
    ax.add_patch(plt.Circle((7.35, 4.35), 0.48, fc="white", ec=FORWARD, lw=2, zorder=4))
    label(ax, 7.35, 4.35, "$\\Sigma_k$", fontsize=18)
    arrow(ax, (7.85, 4.35), (8.5, 4.35), color=FORWARD)
    heat(ax, normalise(m), 8.6, 3.3, 2.1, 2.1)
    label(ax, 9.65, 6.0, "$M_c = \\sum_k w_k^c f_k$", fontsize=15)
    label(ax, 9.65, 2.85, "coarse, $h\\times w$", fontsize=13)
    arrow(ax, (10.8, 4.35), (12.75, 4.35), color=NEUTRAL)
    label(ax, 11.78, 4.85, "upsample", fontsize=13, color=NEUTRAL)
    up = normalise(bilinear(m, 224))
    heat(ax, up, 12.85, 3.1, 2.5, 2.5, grid=False, interpolation="bilinear")
    label(ax, 14.1, 6.0, "image size", fontsize=13)
    arrow(ax, (15.45, 4.35), (16.95, 4.35), color=NEUTRAL)
    label(ax, 16.2, 4.85, "overlay", fontsize=13, color=NEUTRAL)
    photo = cat_photo(224)
    ax.imshow(overlay(photo, up), extent=(17.05, 19.85, 2.95, 5.75), zorder=3)
    ax.add_patch(Rectangle((17.05, 2.95), 2.8, 2.8, fill=False, ec="black", lw=1.2, zorder=4))
    label(ax, 18.45, 6.15, "CAM for class $c$", fontsize=14)
    label(ax, 13.4, 1.3, "$w_k^c$: the last linear layer's weights for class $c$\n"
          "one forward pass, no gradient", fontsize=13, color="#333333")
    return fig


# ---------------------------------------------------------------------------------------------------
# 3. grad_cam_pipeline

def draw_grad_cam_pipeline():
    fig, ax = canvas(10, 5.0)
    f = feature_maps()
    photo = cat_photo(160)
    # Gradients of the score with respect to each map (synthetic): positive on the cat, channel 3 negative.
    grads = np.stack([0.9 * blob(H, 2.5, 3.0, 2.0) + 0.1, 0.5 * blob(H, 4.5, 3.5, 2.2) + 0.05,
                      -0.6 * blob(H, 1.5, 5.0, 2.0) - 0.05])
    alpha = grads.mean(axis=(1, 2))
    gmax = np.abs(grads).max()
    top = 6.45     # forward row (bottom edge)
    low = 1.2      # backward row (bottom edge)
    mid = 1.1      # half the height of a row's pictures
    # forward row: image -> conv layers -> A^k -> rest -> S^c
    ax.imshow(photo, extent=(0.3, 2.5, top, top + 2.2), zorder=3)
    label(ax, 1.4, top + 2.55, "image $x$", fontsize=14)
    arrow(ax, (2.6, top + mid), (3.3, top + mid))
    box(ax, 3.4, top + 0.3, 2.1, 1.6, "conv\nlayers", fontsize=14)
    arrow(ax, (5.6, top + mid), (6.4, top + mid))
    stack(ax, [normalise(a) for a in f], 6.5, top + 0.1, 1.7, offset=0.25)
    label(ax, 7.6, top + 2.55, "feature maps $A^k$", fontsize=14)
    arrow(ax, (8.8, top + mid), (9.6, top + mid))
    box(ax, 9.7, top + 0.3, 2.5, 1.6, "rest of the\nnetwork", fontsize=14)
    arrow(ax, (12.3, top + mid), (13.1, top + mid))
    box(ax, 13.2, top + 0.35, 2.6, 1.5, "score $S^c$\n(pre-softmax)", fontsize=14, fc="white")
    # legend
    label(ax, 18.0, top + 1.75, "forward", fontsize=15, color=FORWARD, weight="bold")
    arrow(ax, (16.9, top + 1.2), (19.1, top + 1.2), color=FORWARD)
    label(ax, 18.0, top + 0.65, "backward", fontsize=15, color=BACKWARD, weight="bold")
    arrow(ax, (19.1, top + 0.1), (16.9, top + 0.1), color=BACKWARD)
    # backward row, right to left: gradients -> alpha -> weighted sum -> upsampled map
    arrow(ax, (14.5, top + 0.3), (14.5, low + 2.45), color=BACKWARD)
    label(ax, 14.75, (top + low) / 2 + 1.2, "backpropagate to $A^k$", fontsize=14, color=BACKWARD, ha="left")
    stack(ax, grads, 13.2, low + 0.1, 1.7, offset=0.25, cmap=SIGNED, vmin=-gmax, vmax=gmax)
    label(ax, 16.0, low + mid, "$\\dfrac{\\partial S^c}{\\partial A^k_{ij}}$", fontsize=17, ha="left")
    arrow(ax, (13.1, low + mid), (11.35, low + mid), color=BACKWARD)
    label(ax, 12.2, low + mid + 0.45, "mean$_{ij}$", fontsize=14, color=BACKWARD)
    heat(ax, alpha[:, None], 10.75, low + 0.35, 0.5, 1.5, cmap=SIGNED, vmin=-gmax, vmax=gmax)
    label(ax, 11.0, low + 2.25, "$\\alpha_k^c$", fontsize=17)
    label(ax, 11.0, low - 0.35, "one weight per channel", fontsize=12)
    arrow(ax, (10.65, low + mid), (8.95, low + mid), color=NEUTRAL)
    # A^k reused from the forward pass
    arrow(ax, (7.35, top), (7.35, low + 2.3), color=NEUTRAL, ls="--")
    label(ax, 7.2, (top + low) / 2 + 1.0, "$A^k$", fontsize=15, color=NEUTRAL, ha="right")
    m = np.maximum(np.einsum("k,khw->hw", alpha, f), 0)
    heat(ax, normalise(m), 6.35, low + 0.1, 2.0, 2.0)
    label(ax, 7.35, low - 0.45, "ReLU$(\\sum_k \\alpha_k^c A^k)$", fontsize=14)
    arrow(ax, (6.25, low + mid), (2.6, low + mid), color=NEUTRAL)
    label(ax, 4.45, low + mid + 0.4, "upsample", fontsize=14, color=NEUTRAL)
    up = normalise(bilinear(m, 160))
    ax.imshow(overlay(photo, up), extent=(0.3, 2.5, low, low + 2.2), zorder=3)
    ax.add_patch(Rectangle((0.3, low), 2.2, 2.2, fill=False, ec="black", lw=1.2, zorder=4))
    label(ax, 1.4, low - 0.45, "Grad-CAM", fontsize=14, weight="bold")
    return fig


# ---------------------------------------------------------------------------------------------------
# 4. relu_backward_rules

RELU_X = np.array([[1.5, -2.0, 0.5], [-1.0, 3.0, -0.5], [2.0, -3.0, 1.0]])
RELU_G = np.array([[-1.0, 2.0, 3.0], [1.0, -2.0, -1.0], [2.0, 1.5, -3.0]])


def relu_rules(x=RELU_X, g=RELU_G):
    """The three backward rules of a ReLU, as (name, rule, kept-mask) triples."""
    return [
        ("backpropagation", "$g\\cdot[x>0]$", x > 0),
        ("deconvnet", "$g\\cdot[g>0] = \\mathrm{ReLU}(g)$", g > 0),
        ("guided backpropagation", "$g\\cdot[x>0]\\cdot[g>0]$", (x > 0) & (g > 0)),
    ]


def draw_relu_backward_rules():
    fig, ax = canvas(10, 6.8)
    x, g = RELU_X, RELU_G
    cell = 1.1
    gw = 3 * cell
    xs = [1.3, 8.35, 15.3]
    # top row: forward x -> y, upstream g
    top = 8.0
    label(ax, 10, 13.0, "One ReLU, $y = \\max(x, 0)$: forward, then three ways back", fontsize=18, weight="bold")
    number_grid(ax, x, xs[0], top, cell)
    label(ax, xs[0] + gw / 2, top + gw + 0.45, "forward input $x$", fontsize=15, color=FORWARD)
    arrow(ax, (xs[0] + gw + 0.2, top + gw / 2), (xs[1] - 0.25, top + gw / 2), color=FORWARD)
    label(ax, (xs[0] + gw + xs[1]) / 2, top + gw / 2 + 0.45, "ReLU", fontsize=15, color=FORWARD)
    number_grid(ax, np.maximum(x, 0), xs[1], top, cell)
    label(ax, xs[1] + gw / 2, top + gw + 0.45, "output $y$", fontsize=15, color=FORWARD)
    number_grid(ax, g, xs[2], top, cell)
    label(ax, xs[2] + gw / 2, top + gw + 0.45, "from above: $g = \\partial S / \\partial y$", fontsize=15, color=BACKWARD)
    arrow(ax, (xs[2] - 0.25, top + gw / 2 - 0.5), (xs[1] + gw + 0.2, top + gw / 2 - 0.5), color=BACKWARD)
    # bottom row: the three rules
    low = 1.0
    ax.plot([0.4, 19.6], [6.9, 6.9], color="#bbbbbb", lw=1.2, ls="--")
    for (name, rule, keep), x0 in zip(relu_rules(x, g), xs):
        number_grid(ax, np.where(keep, g, 0.0), x0, low + 0.6, cell, keep=keep)
        label(ax, x0 + gw / 2, low + gw + 1.7, name, fontsize=14, color=BACKWARD, weight="bold")
        label(ax, x0 + gw / 2, low + gw + 1.05, rule, fontsize=15)
    label(ax, 10, 0.55, "grey: zeroed. Backpropagation keeps the cells where $x > 0$, the deconvnet those where "
          "$g > 0$,\nguided backpropagation only those where both hold.", fontsize=13, color="#333333")
    return fig


# ---------------------------------------------------------------------------------------------------
# 5. guided_grad_cam

def _two_objects(n=160):
    """A synthetic scene: a textured disc (the class, left) and a striped square (another object, right)."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    disc = ((yy - 0.45) ** 2 + (xx - 0.3) ** 2) < 0.2**2
    square = (np.abs(yy - 0.6) < 0.17) & (np.abs(xx - 0.75) < 0.15)
    texture = 0.5 + 0.5 * np.sin(40 * (xx + 0.5 * yy)) * np.sin(30 * yy)
    stripes = 0.5 + 0.5 * np.sign(np.sin(45 * xx))
    return disc, square, texture, stripes


def guided_backprop_picture(n=160):
    """Fine, signed, edge-like pattern on both objects (as Guided Backprop looks: barely class-specific)."""
    disc, square, texture, stripes = _two_objects(n)
    scene = disc * (0.4 + 0.6 * texture) + square * (0.3 + 0.7 * stripes)
    gy, gx = np.gradient(scene)
    m = gx + 0.6 * gy
    return m / np.abs(m).max()


def grad_cam_picture(n=160):
    """A coarse 7 x 7 map on the disc, bilinearly upsampled."""
    coarse = blob(H, 0.45 * H - 0.5, 0.3 * H - 0.5, 1.1)
    return normalise(bilinear(coarse, n)), coarse


def draw_guided_grad_cam():
    fig, ax = canvas(10, 4.0)
    gb = guided_backprop_picture()
    cam, _ = grad_cam_picture()
    ggc = gb * cam
    ggc = ggc / np.abs(ggc).max()
    s = 4.6
    y = 2.1
    xs = [0.5, 7.7, 14.9]

    def signed(m):  # zero is mid-grey, as the course shows signed maps; stretched a little for print
        return np.clip(0.5 + m / (2 * np.percentile(np.abs(m), 99.5)), 0, 1)

    ax.imshow(signed(gb), extent=(xs[0], xs[0] + s, y, y + s), cmap="gray", vmin=0, vmax=1, zorder=3)
    ax.imshow(cam, extent=(xs[1], xs[1] + s, y, y + s), cmap=HEAT, vmin=0, vmax=1, zorder=3)
    ax.imshow(signed(ggc), extent=(xs[2], xs[2] + s, y, y + s), cmap="gray", vmin=0, vmax=1, zorder=3)
    for x0 in xs:
        ax.add_patch(Rectangle((x0, y), s, s, fill=False, ec="black", lw=1.2, zorder=4))
    label(ax, (xs[0] + s + xs[1]) / 2, y + s / 2, "$\\odot$", fontsize=34)
    label(ax, (xs[1] + s + xs[2]) / 2, y + s / 2, "$=$", fontsize=34)
    titles = ["Guided Backprop", "Grad-CAM, upsampled", "Guided Grad-CAM"]
    notes = ["pixel-level, fine;\nbarely class-discriminative",
             "coarse ($h\\times w$);\nclass-discriminative",
             "fine and\nclass-discriminative"]
    for x0, t, n in zip(xs, titles, notes):
        label(ax, x0 + s / 2, y + s + 0.45, t, fontsize=16, weight="bold")
        label(ax, x0 + s / 2, y - 0.85, n, fontsize=13)
    label(ax, 10, 0.35, "element-wise product, pixel by pixel (Grad-CAM for the class of the left object)",
          fontsize=13, color="#333333")
    return fig


# ---------------------------------------------------------------------------------------------------
# 6. cam_family

FAMILY_A = np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 1.0], [0.0, 1.0, 0.0]])      # one channel A^k
FAMILY_G = np.array([[0.2, -0.1, 0.4], [0.3, 0.5, -0.2], [-0.3, 0.1, 0.2]])  # its gradient g^k


def family_weights(A=FAMILY_A, g=FAMILY_G):
    """The weight each method puts on A^k_ij, as {name: 3x3 array} (notebook 08's definitions)."""
    denominator = 2 * g**2 + A.sum() * g**3
    a = np.divide(g**2, denominator, out=np.zeros_like(g), where=denominator != 0)
    return {
        "Grad-CAM": np.full_like(g, g.mean()),
        "Grad-CAM++": np.full_like(g, (a * np.maximum(g, 0)).sum()),
        "LayerCAM": np.maximum(g, 0),
        "HiResCAM": g.copy(),
    }


def draw_cam_family():
    fig, ax = canvas(10, 7.2)
    cell = 1.0
    gw = 3 * cell
    top = 9.95
    label(ax, 10, 14.1, "Four ways to weight the activations $A^k$ with the gradient "
          "$g^k_{ij} = \\partial S^c / \\partial A^k_{ij}$", fontsize=16, weight="bold")
    number_grid(ax, FAMILY_A, 5.2, top, cell, fontsize=14)
    label(ax, 5.2 + gw / 2, top + gw + 0.4, "activations $A^k$", fontsize=14, color=FORWARD)
    number_grid(ax, FAMILY_G, 12.0, top, cell, fontsize=14)
    label(ax, 12.0 + gw / 2, top + gw + 0.4, "gradient $g^k$", fontsize=14, color=BACKWARD)
    ax.plot([0.4, 19.6], [9.45, 9.45], color="#bbbbbb", lw=1.2, ls="--")
    columns = [
        ("Grad-CAM", "$\\alpha_k = \\frac{1}{Z}\\sum_{ij} g^k_{ij}$", "one weight per channel",
         "ReLU$(\\sum_k \\alpha_k A^k)$"),
        ("Grad-CAM++", "$w_k = \\sum_{ij} a^k_{ij}\\,\\mathrm{ReLU}(g^k_{ij})$", "one weight per channel",
         "ReLU$(\\sum_k w_k A^k)$"),
        ("LayerCAM", "$\\mathrm{ReLU}(g^k_{ij})$", "one weight per position",
         "ReLU$(\\sum_k \\mathrm{ReLU}(g^k) \\odot A^k)$"),
        ("HiResCAM", "$g^k_{ij}$, signed", "one weight per position",
         "$\\sum_k g^k \\odot A^k$ (no ReLU)"),
    ]
    weights = family_weights()
    for i, (name, rule, kind, cam) in enumerate(columns):
        cx = 2.5 + 5 * i
        label(ax, cx, 8.85, name, fontsize=15, weight="bold", color=BACKWARD)
        label(ax, cx, 8.05, rule, fontsize=13)
        label(ax, cx, 7.25, kind, fontsize=12, color="#333333")
        number_grid(ax, weights[name], cx - 1.8, 3.15, 1.2, fontsize=12, fmt="{:.2f}")
        label(ax, cx, 2.7, "weight on $A^k_{ij}$", fontsize=12, color="#333333")
        label(ax, cx, 1.95, cam, fontsize=13)
    label(ax, 10, 0.7, "Grad-CAM++: $a^k_{ij} = \\dfrac{(g^k_{ij})^2}{2(g^k_{ij})^2 + \\sum_{ab} A^k_{ab}\\,(g^k_{ij})^3}$"
          " (0 where the denominator is 0);  $Z = h\\,w$", fontsize=13, color="#333333")
    return fig


# ---------------------------------------------------------------------------------------------------

DIAGRAMS = {
    "flatten_vs_gap": draw_flatten_vs_gap,
    "cam_pipeline": draw_cam_pipeline,
    "grad_cam_pipeline": draw_grad_cam_pipeline,
    "relu_backward_rules": draw_relu_backward_rules,
    "guided_grad_cam": draw_guided_grad_cam,
    "cam_family": draw_cam_family,
}


def write(name: str, out: Path = FIGURES_DIR) -> Path:
    """Draw diagram `name` into out/<name>.png."""
    if name not in DIAGRAMS:
        raise ValueError(f"no diagram called {name!r}; the diagrams are {sorted(DIAGRAMS)}")
    out.mkdir(parents=True, exist_ok=True)
    fig = DIAGRAMS[name]()
    path = out / f"{name}.png"
    # Fixed metadata keeps the bytes the same from one run to the next.
    fig.savefig(path, dpi=DPI, facecolor="white", metadata={"Software": None})
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(DIAGRAMS), help="draw this diagram only")
    parser.add_argument("--out", type=Path, default=FIGURES_DIR, help="folder to write into (default: figures/)")
    args = parser.parse_args(argv)
    for name in [args.only] if args.only else DIAGRAMS:
        print(write(name, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
