"""The course's diagrams (figures/*.png, drawn by scripts/make_diagrams.py), shown from a code cell so
they appear alike in Jupyter, on Colab, on GitHub and on the slides."""
from __future__ import annotations

from pathlib import Path

FIGURES_DIR = Path(__file__).resolve().parents[1] / "figures"


def diagram_path(name: str) -> Path:
    """figures/<name>.png; an unknown name lists the diagrams there are."""
    path = FIGURES_DIR / f"{name}.png"
    if not path.exists():
        known = sorted(p.stem for p in FIGURES_DIR.glob("*.png"))
        raise ValueError(f"no diagram called {name!r}; the course has {known}. "
                         "Draw them with `python scripts/make_diagrams.py`.")
    return path


def show_diagram(name: str, width: int = 720):
    """Display figures/<name>.png in a notebook (returns an IPython Image)."""
    from IPython.display import Image
    return Image(filename=str(diagram_path(name)), width=width)
