"""Attachment stores: where the content of uploaded files lives, by SHA-256.

A store keeps one copy of each content per company (content-addressed: the same file
uploaded twice is stored once). :class:`FolderStore`, the built-in ``folder`` store,
writes ``<root>/<company>/<ab>/<sha256>`` under the folder given by ``KEFU_ATTACHMENTS``
(default ``var/attachments``) or a company's ``attachments: {settings: {folder: …}}``.
Plugins give other stores (``kefu_attachment_stores``) with the same three methods.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Protocol

DEFAULT_FOLDER = "var/attachments"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobStore(Protocol):
    """One company's attachment store."""

    def save(self, digest: str, source: Path) -> None:
        """Keep the content of the local file ``source`` (already hashed) as ``digest``.

        May move ``source`` away; storing a digest already there changes nothing."""

    def open(self, digest: str) -> BinaryIO:
        """The stored content of ``digest`` for reading (``FileNotFoundError`` if gone)."""

    def delete(self, digest: str) -> None:
        """Forget ``digest``'s content (no error when it is already gone)."""


def default_root() -> Path:
    """The attachment folder of this installation (``KEFU_ATTACHMENTS``)."""
    return Path(os.environ.get("KEFU_ATTACHMENTS") or DEFAULT_FOLDER)


class FolderStore:
    """Content-addressed files in a folder of the local disk (the ``folder`` store)."""

    name = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if not SHA256_RE.match(digest):  # a digest is all the path is made of
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def save(self, digest: str, source: Path) -> None:
        """Move ``source`` into place (atomic rename: a reader never sees half a file)."""
        target = self._path(digest)
        if target.exists():
            source.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def open(self, digest: str) -> BinaryIO:
        """The file of ``digest``, opened for reading."""
        return self._path(digest).open("rb")

    def delete(self, digest: str) -> None:
        """Remove the file of ``digest`` if it is there."""
        self._path(digest).unlink(missing_ok=True)


def folder_store(company: str, settings: dict[str, object]) -> FolderStore:
    """The ``folder`` store of ``company``: its own sub-folder of the attachment folder."""
    root = Path(str(settings["folder"])) if settings.get("folder") else default_root()
    return FolderStore(root / company)
