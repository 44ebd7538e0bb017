"""Cats and dogs with boxes: the Oxford-IIIT Pet data set (Parkhi et al. 2012), for the optional online cells.

The one place in the course that downloads data (about 800 MB, only when `load_pets` is called
and the archives are not there yet); every other notebook cell works offline. Labels come from the
SPECIES column of the official split lists (1 cat, 2 dog -> 0 cat, 1 dog). The ground truth for
localization is the tight box of the pet in the official trimap (1 pet, 2 background, 3 border;
border pixels count as pet), taken after both image and trimap are resized to size x size.
"""
from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import skimage.transform
from PIL import Image

from .images import prepare_images
from .localization import LocalizationDataset, tight_boxes

PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
PETS_ARCHIVES = ("annotations.tar.gz", "images.tar.gz")
PETS_CLASSES = ("cat", "dog")
PETS_SPLITS = ("trainval", "test")
TRIMAP_BACKGROUND = 2


PETS_ROOT = Path(__file__).resolve().parent.parent / "data" / "pets"  # ignored by git


def load_pets(split: str = "test", n: int | None = None, size: int = 224, root: str | Path = PETS_ROOT,
              seed: int = 0) -> LocalizationDataset:
    """`n` images of the official `split` ("trainval" or "test"; None: all), drawn without replacement
    with `seed`, resized to size x size (squashed, as `xt.preprocess` does), with labels 0 cat / 1 dog,
    pet masks and their boxes. Downloads the two archives into `root` when they are missing."""
    if split not in PETS_SPLITS:
        raise ValueError(f"split must be one of {PETS_SPLITS}, got {split!r}")
    root = Path(root)
    for archive in PETS_ARCHIVES:
        _download(root / archive)
    with tarfile.open(root / "annotations.tar.gz", "r:gz") as annotations:
        names, species = _read_split(annotations, split)
        if n is not None:
            if not 1 <= n <= len(names):
                raise ValueError(f"n must be between 1 and {len(names)} (the {split} split), got {n}")
            chosen = np.sort(np.random.default_rng(seed).choice(len(names), n, replace=False))
            names, species = [names[i] for i in chosen], species[chosen]
    trimaps = _read_members(root / "annotations.tar.gz", {f"annotations/trimaps/{name}.png": name for name in names})
    pictures = _read_members(root / "images.tar.gz", {f"images/{name}.jpg": name for name in names})
    images = prepare_images([_decode(pictures[name], "RGB") for name in names], size)
    masks = np.stack([_resize_mask(_decode(trimaps[name]) != TRIMAP_BACKGROUND, size) for name in names])
    return LocalizationDataset(images, species - 1, tight_boxes(masks), masks, PETS_CLASSES)


def _download(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    try:
        urllib.request.urlretrieve(PETS_URL + path.name, partial)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"could not download {PETS_URL + path.name} ({type(error).__name__}: {error}). "
                           f"The Oxford-IIIT Pet archives need a network connection, or put "
                           f"{', '.join(PETS_ARCHIVES)} into {path.parent} yourself.") from error
    partial.rename(path)


def _read_split(annotations: tarfile.TarFile, split: str) -> tuple[list[str], np.ndarray]:
    """Image names and SPECIES (1 cat, 2 dog) from annotations/<split>.txt: 'name class species breed'."""
    text = annotations.extractfile(f"annotations/{split}.txt").read().decode()
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [row[0] for row in rows], np.array([int(row[2]) for row in rows], dtype=np.int64)


def _read_members(archive: Path, wanted: dict[str, str]) -> dict[str, bytes]:
    """The bytes of the wanted members (member name -> key), in one pass over a (possibly huge) archive."""
    found: dict[str, bytes] = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                found[wanted[member.name]] = tar.extractfile(member).read()
                if len(found) == len(wanted):
                    break
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise ValueError(f"{len(missing)} files are missing from the archive, e.g. {missing[0]!r}")
    return found


def _decode(data: bytes, mode: str | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert(mode) if mode else picture)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to size x size (the image is squashed the same way)."""
    resized = skimage.transform.resize(mask.astype(np.uint8), (size, size), order=0, anti_aliasing=False,
                                       preserve_range=True)
    return resized > 0.5
