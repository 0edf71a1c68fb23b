"""Readers for the paper's image sets, on small fake files written in the exact published formats."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from asymvalley import data
from asymvalley.data import images
from asymvalley.data.base import crop_flip
from asymvalley.data.download import download_url, safe_extract
from asymvalley.errors import UsageError

PER_BATCH = 20


# ----------------------------------------------------------------------------- fake-file writers


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the official CIFAR files: ``str`` as
    BINSTRING (so ``encoding="bytes"`` reads it back as bytes) and NumPy globals
    under ``numpy.core``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        qual = name or obj.__qualname__
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            module, qual = "numpy", "dtype"
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root, rng, py2: bool = True):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    dump = py2_pickle if py2 else (lambda o: pickle.dumps(o))
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x = cifar_rows(PER_BATCH, rng)
        y = [int(v) for v in rng.integers(0, 10, PER_BATCH)]
        if name == "data_batch_1":  # marker pixels: R at (1, 2), G at (3, 4), B at (5, 6) of image 0
            x[0, 0 * 1024 + 1 * 32 + 2] = 255
            x[0, 1 * 1024 + 3 * 32 + 4] = 254
            x[0, 2 * 1024 + 5 * 32 + 6] = 253
        key = (lambda s: s.encode()) if py2 else (lambda s: s)
        obj = {key("batch_label"): key(f"batch {i}"), key("labels"): y, key("data"): x,
               key("filenames"): [key(f"img_{j}.png") for j in range(PER_BATCH)]}
        (d / name).write_bytes(dump(obj))
        batches[name] = (x, y)
    return d, batches


# ----------------------------------------------------------------------------- CIFAR


def test_cifar10_reads_python2_pickles(tmp_path):
    rng = np.random.default_rng(0)
    _, batches = write_cifar10(tmp_path, rng)
    ds = data.load("cifar10", data_dir=str(tmp_path))
    assert ds.train_x.shape == (5 * PER_BATCH, 3, 32, 32) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (PER_BATCH, 3, 32, 32)
    assert ds.input_shape == (3, 32, 32) and ds.num_classes == 10 and ds.augment == "crop_flip"
    assert ds.train_x[0, 0, 1, 2] == 255 and ds.train_x[0, 1, 3, 4] == 254 and ds.train_x[0, 2, 5, 6] == 253
    expect_y = sum((batches[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    assert ds.train_y.tolist() == expect_y and ds.train_y.dtype == torch.int64
    assert ds.test_y.tolist() == batches["test_batch"][1]
    row = batches["data_batch_3"][0][7]
    assert torch.equal(ds.train_x[2 * PER_BATCH + 7], torch.from_numpy(row.reshape(3, 32, 32)))
    all_x = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)]).reshape(-1, 3, 1024) / 255.0
    np.testing.assert_allclose(ds.mean, all_x.mean(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(ds.std, all_x.std(axis=(0, 2)), rtol=1e-10)


def test_cifar10_reads_python3_pickles_and_direct_directory(tmp_path):
    d, _ = write_cifar10(tmp_path, np.random.default_rng(1), py2=False)
    ds = data.load("cifar10", data_dir=str(d))  # the batches directory itself also works
    assert ds.train_x.shape == (5 * PER_BATCH, 3, 32, 32)


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(2)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    labels = {}
    for name, n in (("train", 30), ("test", 10)):
        fine = [int(v) for v in rng.integers(0, 100, n)]
        fine[0] = 99
        coarse = [v // 5 for v in fine]
        labels[name] = fine
        obj = {b"data": cifar_rows(n, rng), b"fine_labels": fine, b"coarse_labels": coarse, b"filenames": [b"x"] * n}
        (d / name).write_bytes(py2_pickle(obj))
    ds = data.load("cifar100", data_dir=str(tmp_path))
    assert ds.num_classes == 100 and ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert ds.train_y.tolist() == labels["train"] and ds.test_y.tolist() == labels["test"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    d, _ = write_cifar10(tmp_path, np.random.default_rng(3))
    marker = tmp_path / "pwned"
    (d / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(marker)}))
    with pytest.raises(UsageError, match="not a plain data pickle"):
        data.load("cifar10", data_dir=str(tmp_path))
    assert not marker.exists()


# ----------------------------------------------------------------------------- SVHN, STL-10


def write_svhn(root, rng, n_train=25, n_test=12):
    from scipy.io import savemat

    d = root / "svhn"
    d.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
        y[0, 0], y[1, 0] = 10, 3
        x[3, 5, 1, 2] = 200  # image 2, channel G, row 3, column 5
        x[3, 5, 0, 2] = 17
        savemat(d / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y)
    return d, out


def test_svhn_mat_files_and_label_ten_is_zero(tmp_path):
    _, raw = write_svhn(tmp_path, np.random.default_rng(4))
    ds = data.load("svhn", data_dir=str(tmp_path))
    assert ds.train_x.shape == (25, 3, 32, 32) and ds.test_x.shape == (12, 3, 32, 32)
    assert ds.train_y[0] == 0 and ds.train_y[1] == 3
    assert int(ds.train_y.max()) <= 9 and int(ds.train_y.min()) >= 0
    expect = raw["train"][1].reshape(-1).astype(np.int64) % 10
    assert ds.train_y.tolist() == expect.tolist()
    assert ds.train_x[2, 1, 3, 5] == 200 and ds.train_x[2, 0, 3, 5] == 17
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)


def write_stl10(root, rng, n_train=6, n_test=4):
    d = root / "stl10_binary"
    d.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img = rng.integers(0, 100, size=(n, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W) as it should come out
        img[0, 0, 10, :] = 255  # a horizontal bar: row 10 of the red channel of image 0
        img[0, 2, :, 70] = 254  # a vertical bar: column 70 of the blue channel
        labels = (np.arange(n) % 10 + 1).astype(np.uint8)
        labels[0] = 10
        # column-major per image: within each channel, the column index varies slowest
        (d / f"{split}_X.bin").write_bytes(np.ascontiguousarray(img.transpose(0, 1, 3, 2)).tobytes())
        (d / f"{split}_y.bin").write_bytes(labels.tobytes())
        out[split] = (img, labels)
    return d, out


def test_stl10_column_major_orientation_and_labels(tmp_path):
    _, raw = write_stl10(tmp_path, np.random.default_rng(5))
    ds = data.load("stl10", data_dir=str(tmp_path))
    assert ds.train_x.shape == (6, 3, 96, 96) and ds.test_x.shape == (4, 3, 96, 96)
    assert ds.input_shape == (3, 96, 96)
    assert bool((ds.train_x[0, 0, 10, :] == 255).all()) and not bool((ds.train_x[0, 0, :, 10] == 255).all())
    assert bool((ds.train_x[0, 2, :, 70] == 254).all())
    assert torch.equal(ds.train_x, torch.from_numpy(raw["train"][0]))
    assert ds.train_y.tolist() == (raw["train"][1].astype(int) - 1).tolist() and ds.train_y[0] == 9
    assert int(ds.test_y.min()) >= 0 and int(ds.test_y.max()) <= 9


# ----------------------------------------------------------------------------- normalisation, augmentation


@pytest.mark.parametrize("name", ["synthetic-cifar", "stl10"])
def test_prepare_standardises_train_split(tmp_path, name):
    if name == "stl10":
        write_stl10(tmp_path, np.random.default_rng(6))
    ds = data.load(name, data_dir=str(tmp_path))
    x = ds.prepare(ds.train_x)
    assert x.dtype == torch.float32 and x.shape == ds.train_x.shape
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(mean, torch.zeros(3), atol=1e-4)
    assert torch.allclose(std, torch.ones(3), atol=1e-4)


def test_synthetic_cifar_is_seeded_and_cifar_shaped():
    a = data.load("synthetic-cifar")
    b = data.load("synthetic-cifar")
    c = data.load("synthetic-cifar", seed=1)
    assert a.train_x.shape == (512, 3, 32, 32) and a.test_x.shape == (256, 3, 32, 32)
    assert a.train_x.dtype == torch.uint8 and a.num_classes == 10 and a.augment == "crop_flip"
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert set(a.train_y.tolist()) == set(range(10))
    assert {"cifar10", "cifar100", "svhn", "stl10", "synthetic-cifar"} <= set(data.names())


def test_crop_flip_keeps_shape_and_flips_correctly():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(8 * 3 * 6 * 7, dtype=torch.float32).view(8, 3, 6, 7)
    out = crop_flip(x, g, pad=0)  # no translation: every image is itself or its mirror image
    assert out.shape == x.shape
    flipped = 0
    for i in range(8):
        if torch.equal(out[i], x[i]):
            continue
        assert torch.equal(out[i], x[i].flip(-1))
        flipped += 1
    assert 0 < flipped < 8

    g = torch.Generator().manual_seed(1)
    out = crop_flip(x, g, pad=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(8):  # each output is some window of the zero-padded image, possibly mirrored
        windows = [padded[i, :, dy:dy + 6, dx:dx + 7] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)

    ds = data.load("synthetic-cifar", n_train=16, n_test=4)
    batch = ds.prepare(ds.train_x, train_augment=True, generator=torch.Generator().manual_seed(2))
    assert batch.shape == (16, 3, 32, 32) and batch.dtype == torch.float32


# ----------------------------------------------------------------------------- offline errors, download


@pytest.mark.parametrize("name,files", [
    ("cifar10", ["data_batch_1", "data_batch_5", "test_batch", "cifar-10-batches-py"]),
    ("cifar100", ["train", "test", "cifar-100-python"]),
    ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    ("stl10", ["train_X.bin", "test_y.bin", "stl10_binary"]),
])
def test_offline_error_names_files_directory_and_options(tmp_path, monkeypatch, name, files):
    monkeypatch.setenv("ASYMVALLEY_DATA", str(tmp_path / "envroot"))
    with pytest.raises(UsageError) as err:
        data.load(name)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path / "envroot") in msg
    for f in files:
        assert f in msg
    assert "--data-dir" in msg and "--download" not in msg  # no command takes --download: never advise it
    assert not (tmp_path / "envroot").exists()  # nothing created, nothing fetched


def make_cifar10_archive(tmp_path):
    src = tmp_path / "src"
    write_cifar10(src, np.random.default_rng(7))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def _patch_source(monkeypatch, name, archives):
    src = images.SOURCES[name]
    monkeypatch.setitem(images.SOURCES, name, images.ImageSource(src.subdir, src.files, tuple(archives)))


def test_download_from_file_url_verifies_and_extracts(tmp_path, monkeypatch):
    archive, md5 = make_cifar10_archive(tmp_path)
    _patch_source(monkeypatch, "cifar10", [images.Archive(archive.as_uri(), "cifar-10-python.tar.gz", md5, True)])
    root = tmp_path / "root"
    ds = data.load("cifar10", data_dir=str(root), download=True)
    assert ds.train_x.shape == (5 * PER_BATCH, 3, 32, 32)
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    archive.unlink()  # a second load needs no network
    assert data.load("cifar10", data_dir=str(root), download=True).train_x.shape[0] == 5 * PER_BATCH


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    archive, _ = make_cifar10_archive(tmp_path)
    _patch_source(monkeypatch, "cifar10", [images.Archive(archive.as_uri(), "cifar-10-python.tar.gz", "0" * 32, True)])
    root = tmp_path / "root"
    with pytest.raises(UsageError, match="checksum mismatch") as err:
        data.load("cifar10", data_dir=str(root), download=True)
    assert "\n" not in str(err.value) and "0" * 32 in str(err.value)
    assert list(root.iterdir()) == []


def test_download_with_injected_fetch_for_svhn(tmp_path):
    """The official URLs and checksums stay in place; the opener is replaced, so no network is touched."""
    files = write_svhn(tmp_path / "src", np.random.default_rng(8))[0]
    blobs = {f"http://ufldl.stanford.edu/housenumbers/{n}": (files / n).read_bytes() for n in ("train_32x32.mat", "test_32x32.mat")}
    seen = []

    def fetch(url):
        seen.append(url)
        return io.BytesIO(blobs[url])

    with pytest.raises(UsageError, match="checksum mismatch"):  # fake files do not have the published md5
        images.ensure_files("svhn", tmp_path / "root", download=True, fetch=fetch, progress=False)
    assert seen == ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat"]

    dest = tmp_path / "dl" / "train_32x32.mat"
    md5 = hashlib.md5(blobs[seen[0]]).hexdigest()
    assert download_url(seen[0], dest, md5, fetch=fetch, progress=False) == dest
    assert dest.read_bytes() == blobs[seen[0]]


def test_download_network_error_is_one_line(tmp_path):
    def fetch(url):
        raise OSError("no route to host")

    with pytest.raises(UsageError, match="could not download") as err:
        download_url("http://example.invalid/x", tmp_path / "x", None, fetch=fetch, progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_safe_extract_refuses_unsafe_members(tmp_path, kind):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        ok = tarfile.TarInfo("good/file.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if kind == "symlink":
            bad = tarfile.TarInfo("good/link")
            bad.type = tarfile.SYMTYPE
            bad.linkname = "/etc/passwd"
            tar.addfile(bad)
        else:
            bad = tarfile.TarInfo("../escape.txt" if kind == "dotdot" else "/tmp/asymvalley-escape.txt")
            bad.size = 3
            tar.addfile(bad, io.BytesIO(b"bad"))
    dest = tmp_path / "out"
    with pytest.raises(UsageError, match="refusing to extract"):
        safe_extract(archive, dest)
    assert not (tmp_path / "escape.txt").exists()
    assert not (dest / "good").exists()  # nothing extracted at all

