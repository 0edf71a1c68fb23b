"""Fetching and unpacking the published data-set archives, safely.

Three small pieces, each testable without a network:

- `download_url` streams a URL (``http(s)://`` or ``file://``) to a file with
  a tqdm progress bar, checks its MD5 against the published value and only
  then moves it into place (temporary file + ``os.replace``), so a half
  written or corrupted download never looks like a finished one. The opener
  is injectable (``fetch=``) for tests.
- `safe_extract` unpacks a tar archive after checking every member: no
  absolute paths, no ``..`` components, no links or devices; it extracts into
  a temporary directory next to the target and renames the result into place.
- `md5sum` hashes a file in chunks.

>>> download_url("file:///tmp/x.tar.gz", Path("/tmp/data/x.tar.gz"), md5=None)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from ..errors import UsageError

__all__ = ["download_url", "safe_extract", "md5sum"]

_CHUNK = 1 << 20


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 digest of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _default_fetch(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 (official archive URLs or file:// in tests)


def download_url(
    url: str,
    dest: str | os.PathLike,
    md5: str | None,
    fetch: Callable[[str], BinaryIO] | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``md5`` (hex) when given.

    ``fetch(url)`` must return a readable binary file object (it may have a
    ``headers`` mapping with ``Content-Length`` for the progress bar); the
    default is `urllib.request.urlopen`, which also serves ``file://`` URLs.
    A checksum mismatch or a network failure raises `UsageError`; nothing is
    left at ``dest`` in that case.
    """
    from ..progress import progress_bar

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetch = fetch or _default_fetch
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        try:
            response = fetch(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UsageError(
                f"could not download {url} ({exc}); check the network connection, or place the file at {dest} yourself"
            ) from None
        with response, os.fdopen(fd, "wb") as out:
            fd = -1
            headers = getattr(response, "headers", None)
            total = headers.get("Content-Length") if headers is not None else None
            with progress_bar(int(total) if total else None, dest.name, "B", enabled=progress, unit_scale=True,
                              unit_divisor=1024, leave=False) as bar:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except OSError as exc:
                        raise UsageError(f"download of {url} was interrupted ({exc}); download it again") from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if md5 is not None and got != md5.lower():
            raise UsageError(
                f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download is corrupt or not the official file, "
                f"download it again or place a verified copy at {dest}"
            )
        os.replace(tmp, dest)
        tmp = None
        return dest
    finally:
        if fd != -1:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (parts and ":" in parts[0]):
        raise UsageError(f"refusing to extract {archive.name}: member {name!r} has an absolute path; the archive is not the official one, delete it and download again")
    if ".." in parts:
        raise UsageError(f"refusing to extract {archive.name}: member {name!r} contains '..'; the archive is not the official one, delete it and download again")
    if not (member.isfile() or member.isdir()):
        raise UsageError(f"refusing to extract {archive.name}: member {name!r} is a link or special file; the archive is not the official one, delete it and download again")


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract tar ``archive`` (any compression) into directory ``dest``, refusing unsafe members.

    Returns the names of the top-level entries placed in ``dest``. An existing
    entry of the same name is replaced only after the whole archive has been
    extracted successfully.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"cannot open {archive} as a tar archive ({exc}); delete it and download again") from None
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        with tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, archive)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **kwargs)  # noqa: S202 (members checked above)
        tops = sorted(p.name for p in staging.iterdir())
        for top in tops:
            target = dest / top
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(staging / top, target)
        return tops
    finally:
        shutil.rmtree(staging, ignore_errors=True)
