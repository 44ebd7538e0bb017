"""utils.load_pets (the optional online experiment's data) on small archives laid out like the official ones."""
import io
import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

import utils
from utils import pets

# Official layout: annotations/<split>.txt lines "name class-id species breed-id" (species 1 cat, 2 dog),
# annotations/trimaps/<name>.png (1 pet, 2 background, 3 border), images/<name>.jpg.
PETS = {"Abyssinian_1": 1, "beagle_2": 2, "Bombay_3": 1}


def trimap(height=64, width=128):
    """Background 2, pet 1 on rows 18..45 and columns 36..91, a border of 3 two pixels wide around it:
    the pet with its border covers rows 16..47 and columns 34..93."""
    t = np.full((height, width), 2, np.uint8)
    t[16:48, 34:94] = 3
    t[18:46, 36:92] = 1
    return t


def encoded(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def archives(tmp_path):
    rng = np.random.default_rng(0)
    with tarfile.open(tmp_path / "annotations.tar.gz", "w:gz") as tar:
        lines = ["#Image CLASS-ID SPECIES BREED ID"] + [f"{n} {i + 1} {s} 1" for i, (n, s) in enumerate(PETS.items())]
        add(tar, "annotations/test.txt", "\n".join(lines).encode())
        add(tar, "annotations/trainval.txt", b"Abyssinian_1 1 1 1\n")
        for name in PETS:
            add(tar, f"annotations/trimaps/._{name}.png", b"resource fork, not an image")
            add(tar, f"annotations/trimaps/{name}.png", encoded(trimap(), "PNG"))
    with tarfile.open(tmp_path / "images.tar.gz", "w:gz") as tar:
        for name in PETS:
            add(tar, f"images/{name}.jpg", encoded(rng.integers(0, 256, (64, 128, 3), dtype=np.uint8), "JPEG"))
    return tmp_path


def test_load_pets_reads_labels_masks_and_boxes(archives):
    data = utils.load_pets("test", size=32, root=archives)
    assert data.class_names == ("cat", "dog")
    assert data.images.shape == (3, 32, 32, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, [0, 1, 0])  # species 1 cat, 2 dog
    # 64 x 128 squashed to 32 x 32: rows / 2 and columns / 4; the border counts as pet
    for box in data.boxes:
        np.testing.assert_allclose(box, [34 / 4, 16 / 2, 94 / 4, 48 / 2], atol=1)
    for mask, box in zip(data.masks, data.boxes):
        x0, y0, x1, y1 = box
        assert mask[y0:y1, x0:x1].all() and mask.sum() == (x1 - x0) * (y1 - y0)


def test_load_pets_subsets_and_splits(archives):
    one = utils.load_pets("test", n=2, size=32, root=archives, seed=5)
    assert len(one) == 2
    again = utils.load_pets("test", n=2, size=32, root=archives, seed=5)
    np.testing.assert_array_equal(one.images, again.images)
    assert len(utils.load_pets("trainval", size=32, root=archives)) == 1
    with pytest.raises(ValueError, match="between 1 and 3"):
        utils.load_pets("test", n=4, root=archives)
    with pytest.raises(ValueError, match="split must be one of"):
        utils.load_pets("train", root=archives)


def test_missing_archives_offline_give_a_clear_error(tmp_path, monkeypatch):
    def offline(url, filename):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pets.urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match="need a network connection"):
        utils.load_pets("test", root=tmp_path / "pets")
    assert not list((tmp_path / "pets").iterdir())  # no partial download left behind


def test_a_file_missing_from_the_archive_is_reported(archives):
    with tarfile.open(archives / "annotations.tar.gz", "w:gz") as tar:  # a list naming an image not in images/
        add(tar, "annotations/test.txt", b"Abyssinian_1 1 1 1\nghost_9 2 2 1\n")
        for name in ("Abyssinian_1", "ghost_9"):
            add(tar, f"annotations/trimaps/{name}.png", encoded(trimap(), "PNG"))
    with pytest.raises(ValueError, match="missing from the archive.*ghost_9"):
        utils.load_pets("test", size=32, root=archives)
