"""The paper's image data sets, read from their published file formats.

Registered sets (all return `DataSplits` with ``uint8`` (N, 3, H, W) images,
per-channel ``mean``/``std`` of the training split in [0, 1] units and
``augment="crop_flip"``):

========== ===================================== ==============================
name       files, under ``DATA_DIR``              published by
========== ===================================== ==============================
cifar10    ``cifar-10-batches-py/data_batch_1..5, Krizhevsky 2009 (python pickles)
           test_batch``
cifar100   ``cifar-100-python/train, test``       Krizhevsky 2009, fine labels
svhn       ``svhn/train_32x32.mat, test_32x32.mat`` Netzer et al. 2011 (MATLAB v5)
stl10      ``stl10_binary/{train,test}_{X,y}.bin`` Coates et al. 2011 (raw uint8)
========== ===================================== ==============================

plus ``synthetic-cifar`` (seeded random CIFAR-shaped images, no files).

``DATA_DIR`` is the ``data_dir`` argument (the CLI's ``--data-dir``), else
``$ASYMVALLEY_DATA``, else ``<cache_dir()>/data``; the files may also sit
directly in ``DATA_DIR``. With ``download=True`` the official archives are
fetched, MD5-checked and unpacked there (see `asymvalley.data.download`).

The CIFAR pickles are loaded with a restricted unpickler that only resolves
plain containers and NumPy array reconstruction, so a tampered file cannot
run code.

>>> from asymvalley import data
>>> d = data.load("synthetic-cifar")
>>> d.train_x.shape, d.train_x.dtype, d.num_classes
(torch.Size([512, 3, 32, 32]), torch.uint8, 10)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import UsageError
from . import register_dataset
from .base import DataSplits
from .download import download_url, md5sum, safe_extract
from .embedded import cache_dir
from .safe_pickle import restricted_load

__all__ = [
    "Archive", "ImageSource", "SOURCES", "data_root", "ensure_files",
    "read_cifar10", "read_cifar100", "read_svhn", "read_stl10", "restricted_load", "channel_stats",
]

DATA_ENV = "ASYMVALLEY_DATA"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$ASYMVALLEY_DATA``, else ``cache_dir()/"data"``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Archive:
    """One published file: where to fetch it, its MD5, and whether it is a tar to unpack."""

    url: str
    filename: str
    md5: str
    extract: bool


@dataclass(frozen=True)
class ImageSource:
    """Where a data set's files live under the data root, and how to obtain them."""

    subdir: str
    files: tuple[str, ...]
    archives: tuple[Archive, ...]


SOURCES: dict[str, ImageSource] = {
    "cifar10": ImageSource(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
        (Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                 "c58f30108f718f92721af3b95e74349a", True),),
    ),
    "cifar100": ImageSource(
        "cifar-100-python",
        ("train", "test"),
        (Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85", True),),
    ),
    "svhn": ImageSource(
        "svhn",
        ("train_32x32.mat", "test_32x32.mat"),
        (Archive("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                 "e26dedcc434d2e4c54c9b2d4a06d8373", False),
         Archive("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                 "eb5a983be6a315427106f1b164d9cef3", False)),
    ),
    "stl10": ImageSource(
        "stl10_binary",
        ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"),
        (Archive("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                 "91f7769df0f17e558f3565bffb0c7dfb", True),),
    ),
}


def _locate(source: ImageSource, root: Path) -> Path | None:
    for cand in (root / source.subdir, root):
        if all((cand / f).is_file() for f in source.files):
            return cand
    return None


def ensure_files(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    fetch: Callable | None = None,
    progress: bool = True,
) -> Path:
    """The directory holding data set ``name``'s files; download them first if asked.

    Offline without the files this raises a one-line `UsageError` naming the
    files, the directory, the ``--data-dir`` option and where the files are published.
    """
    source = SOURCES[name]
    root = data_root(data_dir)
    found = _locate(source, root)
    if found is not None:
        return found
    if not download:
        where = root / source.subdir
        raise UsageError(
            f"{name} files not found: place {', '.join(source.files)} in {where}/ "
            f"(or pass --data-dir DIR whose {source.subdir}/ holds them); they are published at "
            f"{', '.join(a.url for a in source.archives)}"
        )
    target = root / source.subdir
    for arc in source.archives:
        if arc.extract:
            path = root / arc.filename
            if not (path.is_file() and md5sum(path) == arc.md5):
                download_url(arc.url, path, arc.md5, fetch=fetch, progress=progress)
            safe_extract(path, root)
        else:
            path = target / arc.filename
            if not (path.is_file() and md5sum(path) == arc.md5):
                download_url(arc.url, path, arc.md5, fetch=fetch, progress=progress)
    found = _locate(source, root)
    if found is None:
        raise UsageError(
            f"{name}: downloaded archives did not contain {', '.join(source.files)} under {target}/; "
            f"delete {root / source.subdir} and fetch the archives again"
        )
    return found


def _key(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise UsageError(f"data-set pickle lacks key {key!r}; replace it with the official file")


def _as_uint8(raw, path: Path, what: str = "pixels") -> np.ndarray:
    """``raw`` as uint8, refusing values a uint8 cannot hold (a silent wrap-around would corrupt the images)."""
    arr = np.asarray(raw)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "iuf" or (arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255
                                                      or (arr.dtype.kind == "f" and not (arr == np.round(arr)).all()))):
        lo, hi = (arr.min(), arr.max()) if arr.size and arr.dtype.kind in "iuf" else ("?", "?")
        raise UsageError(f"{path}: {what} of dtype {arr.dtype} range from {lo} to {hi}, not whole numbers 0..255; "
                         "replace it with the official file")
    return arr.astype(np.uint8)


def _as_labels(raw, path: Path) -> np.ndarray:
    arr = np.asarray(raw)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise UsageError(f"{path}: labels have shape {arr.shape} and dtype {arr.dtype}, not a list of integers; "
                         "replace it with the official file")
    return arr.astype(np.int64)


def _read_cifar_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for p in paths:
        d = restricted_load(p)
        if not isinstance(d, dict):
            raise UsageError(f"{p} does not hold a dict; replace it with the official file")
        x = _as_uint8(_key(d, "data"), p)
        y = _as_labels(_key(d, label_key), p)
        if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
            raise UsageError(f"{p}: expected data of shape (N, 3072) and N labels, got {x.shape} and {len(y)}; replace it with the official file")
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs).reshape(-1, 3, 32, 32)  # rows: 1024 R, 1024 G, 1024 B, each row-major 32x32
    return x, np.concatenate(ys)


# --------------------------------------------------------------------------- format readers


def read_cifar10(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from ``cifar-10-batches-py``; images uint8 (N, 3, 32, 32)."""
    d = Path(directory)
    tx, ty = _read_cifar_batches([d / f"data_batch_{i}" for i in range(1, 6)], "labels")
    vx, vy = _read_cifar_batches([d / "test_batch"], "labels")
    return tx, ty, vx, vy


def read_cifar100(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from ``cifar-100-python`` with the 100 fine labels."""
    d = Path(directory)
    tx, ty = _read_cifar_batches([d / "train"], "fine_labels")
    vx, vy = _read_cifar_batches([d / "test"], "fine_labels")
    return tx, ty, vx, vy


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(path)
    except Exception as exc:  # scipy raises several types for bad files
        raise UsageError(f"cannot read {path} as a MATLAB file ({exc}); replace it with the official file") from None
    if "X" not in m or "y" not in m:
        raise UsageError(f"{path} lacks the arrays X and y; replace it with the official file")
    x, y = _as_uint8(m["X"], path), _as_labels(np.asarray(m["y"]).reshape(-1), path)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise UsageError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, got {x.shape}; replace it with the official file")
    x = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    y[y == 10] = 0  # the digit 0 is stored as label 10
    return x, y


def read_svhn(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from SVHN's cropped-digit ``.mat`` files; label 10 becomes 0."""
    d = Path(directory)
    tx, ty = _read_svhn_mat(d / "train_32x32.mat")
    vx, vy = _read_svhn_mat(d / "test_32x32.mat")
    return tx, ty, vx, vy


def _read_stl_split(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(d / f"{split}_X.bin", dtype=np.uint8)
    per = 3 * 96 * 96
    if raw.size % per:
        raise UsageError(f"{d / f'{split}_X.bin'} has {raw.size} bytes, not a multiple of 3*96*96; replace it with the official file")
    # each image is stored column-major: (C, W, H) in row-major terms, so swap the last two axes
    x = np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2))
    y = np.fromfile(d / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1  # labels 1..10 -> 0..9
    if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise UsageError(f"{d}: {split}_y.bin does not hold one label in 1..10 per image; replace it with the official file")
    return x, y


def read_stl10(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) from ``stl10_binary``; images uint8 (N, 3, 96, 96)."""
    d = Path(directory)
    tx, ty = _read_stl_split(d, "train")
    vx, vy = _read_stl_split(d, "test")
    return tx, ty, vx, vy


# --------------------------------------------------------------------------- DataSplits


def channel_stats(x: np.ndarray | torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), in [0, 1] units.

    Accumulates in float64 over chunks of images, so a 50 000-image set needs
    no full float copy.
    """
    if isinstance(x, torch.Tensor):
        x = x.cpu().numpy()
    c = x.shape[1]
    s = np.zeros(c, dtype=np.float64)
    s2 = np.zeros(c, dtype=np.float64)
    count = 0
    for i in range(0, len(x), chunk):
        b = x[i:i + chunk].astype(np.float64) / 255.0
        s += b.sum(axis=(0, 2, 3))
        s2 += np.square(b).sum(axis=(0, 2, 3))
        count += b.shape[0] * b.shape[2] * b.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    std = np.maximum(std, 1e-8)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _splits(name: str, arrays, num_classes: int, info: dict) -> DataSplits:
    tx, ty, vx, vy = arrays
    mean, std = channel_stats(tx)
    tx_t = torch.from_numpy(np.ascontiguousarray(tx, dtype=np.uint8))
    vx_t = torch.from_numpy(np.ascontiguousarray(vx, dtype=np.uint8))
    return DataSplits(
        name, tx_t, torch.from_numpy(np.asarray(ty, dtype=np.int64)), vx_t, torch.from_numpy(np.asarray(vy, dtype=np.int64)),
        input_shape=tuple(int(s) for s in tx_t.shape[1:]), num_classes=num_classes,
        mean=mean, std=std, augment="crop_flip", info=info,
    )


def _load_files(name: str, reader, num_classes: int, data_dir, download: bool) -> DataSplits:
    d = ensure_files(name, data_dir, download)
    return _splits(name, reader(d), num_classes, {"source": str(d), "format": name})


@register_dataset("cifar10")
def cifar10(data_dir: str | None = None, download: bool = False) -> DataSplits:
    """CIFAR-10: 50 000 train / 10 000 test uint8 images (3, 32, 32), 10 classes."""
    return _load_files("cifar10", read_cifar10, 10, data_dir, download)


@register_dataset("cifar100")
def cifar100(data_dir: str | None = None, download: bool = False) -> DataSplits:
    """CIFAR-100: 50 000 train / 10 000 test uint8 images (3, 32, 32), 100 fine classes."""
    return _load_files("cifar100", read_cifar100, 100, data_dir, download)


@register_dataset("svhn")
def svhn(data_dir: str | None = None, download: bool = False) -> DataSplits:
    """SVHN cropped digits: 73 257 train / 26 032 test uint8 images (3, 32, 32), 10 classes (no ``extra``)."""
    return _load_files("svhn", read_svhn, 10, data_dir, download)


@register_dataset("stl10")
def stl10(data_dir: str | None = None, download: bool = False) -> DataSplits:
    """STL-10 labelled splits: 5 000 train / 8 000 test uint8 images (3, 96, 96), 10 classes."""
    return _load_files("stl10", read_stl10, 10, data_dir, download)


@register_dataset("synthetic-cifar")
def synthetic_cifar(
    n_train: int = 512, n_test: int = 256, num_classes: int = 10, image_size: int = 32, seed: int = 0,
    data_dir: str | None = None, download: bool = False,
) -> DataSplits:
    """Seeded random uint8 images (3, image_size, image_size), for tests and benchmarks; no files.

    Each class has a random colour template; an image is its class template
    plus uniform noise, so the set is learnable but not trivial. ``data_dir``
    and ``download`` are accepted (and ignored) so that it can stand in for
    the file-backed sets.
    """
    g = torch.Generator().manual_seed(int(seed))
    templates = torch.randint(0, 256, (num_classes, 3, image_size, image_size), generator=g).float()

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=g)
        noise = torch.randint(0, 256, (n, 3, image_size, image_size), generator=g).float()
        x = (0.5 * templates[y] + 0.5 * noise).round().clamp_(0, 255).to(torch.uint8)
        return x, y

    tx, ty = draw(int(n_train))
    vx, vy = draw(int(n_test))
    return _splits("synthetic-cifar", (tx.numpy(), ty.numpy(), vx.numpy(), vy.numpy()), int(num_classes),
                   {"source": f"synthetic, seed={seed}"})
