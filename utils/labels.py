"""ImageNet class names (torchvision's spelling), read from data/imagenet_classes.txt."""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
IMAGENET_CLASSES_FILE = DATA_DIR / "imagenet_classes.txt"
NUM_IMAGENET_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names in model output order (index 285: "Egyptian cat")."""
    if not IMAGENET_CLASSES_FILE.is_file():
        raise FileNotFoundError(
            f"the class-name file {IMAGENET_CLASSES_FILE} is missing; it ships with the course "
            "repository: restore it with `git checkout data/imagenet_classes.txt`"
        )
    names = IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    if len(names) != NUM_IMAGENET_CLASSES:
        raise ValueError(
            f"{IMAGENET_CLASSES_FILE} has {len(names)} lines, expected {NUM_IMAGENET_CLASSES} "
            "(one class name per line)"
        )
    return names


def class_index(name: str, classes: list[str] | None = None) -> int:
    """Index of the class called `name` (ImageNet unless `classes` is given).

    An exact match wins; otherwise the match ignores case. Unknown or ambiguous names raise
    ValueError (unknown ones with close matches as suggestions).
    """
    if not isinstance(name, str):
        raise TypeError(f"expected a class name (str), got {type(name).__name__}")
    classes = imagenet_classes() if classes is None else list(classes)
    if name in classes:
        return classes.index(name)
    matches = [i for i, candidate in enumerate(classes) if candidate.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        spelled = ", ".join(f"{classes[i]!r} ({i})" for i in matches)
        raise ValueError(f"{name!r} matches several classes if case is ignored: {spelled}; spell it exactly")
    suggestions = difflib.get_close_matches(name, classes, n=5, cutoff=0.6)
    hint = f"; did you mean one of {suggestions}?" if suggestions else ""
    raise ValueError(f"unknown class name {name!r}{hint}")
