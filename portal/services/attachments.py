"""Attachments: files sent with something a customer or staff wrote, stored and served.

Generic by owner: a row names its owner by kind and id (`case_message` in services/cases.py,
`rfq` and `quote` in services/quotes.py). A capability registers who may see its owners with
`@visible_to("kind")`; `for_customer` asks that function, so an attachment of a case, RFQ or
quote the user may not open answers None (hence 404).

A file is accepted by its content, not its name: the first bytes must be one of the allowed
types (PNG, JPEG, GIF, WebP, PDF, plain text/CSV) AND the name must end as that type does, so
a renamed file is refused. Images are decoded and stored re-encoded, which drops their
metadata (EXIF, GPS, comments), with a thumbnail. Limits (size, count) come from settings.
"""

import io
import os
import unicodedata
import warnings
from dataclasses import dataclass, field

from ..db import utcnow
from ..models import Attachment
from . import settings, storage

# kind: (content type, extensions a file of that kind may be named with, label)
KINDS = {
    "png": ("image/png", (".png",), "PNG image"),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg"), "JPEG image"),
    "gif": ("image/gif", (".gif",), "GIF image"),
    "webp": ("image/webp", (".webp",), "WebP image"),
    "pdf": ("application/pdf", (".pdf",), "PDF"),
    "text": ("text/plain; charset=utf-8", (".txt", ".csv"), "text file"),
}
IMAGES = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
ACCEPT = ",".join(ext for _type, exts, _label in KINDS.values() for ext in exts)
ALLOWED_TEXT = "images (PNG, JPEG, GIF, WebP), PDF, and plain text or CSV files"
THUMB_SIZE = (320, 320)
# Decoding a "decompression bomb" (a tiny file of a huge image) would eat the memory.
MAX_PIXELS = 40_000_000

_VISIBLE = {}


def visible_to(kind: str):
    """Register `check(user, owner_id) -> bool` for attachments owned by a `kind` row."""

    def register(check):
        _VISIBLE[kind] = check
        return check

    return register


class Refused(ValueError):
    """A file failed a check; the message says which file and why."""


@dataclass
class Prepared:
    """A checked file ready to store: bytes as stored (images re-encoded) and a thumbnail."""

    filename: str
    kind: str
    data: bytes
    thumb: bytes | None = None
    width: int | None = None
    height: int | None = None
    key: str = field(default_factory=storage.new_key)
    thumb_key: str | None = None

    @property
    def content_type(self) -> str:
        return KINDS[self.kind][0]


def limits() -> tuple[int, int]:
    """(largest file in bytes, most files per message) from settings."""
    values = settings.load()
    return values["attachment_max_mb"] * 1024 * 1024, values["attachment_max_files"]


def sniff(data: bytes) -> str | None:
    """The kind the content is (by its first bytes), or None when not an allowed kind."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"%PDF-"):
        return "pdf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\r\n\f" for ch in text):
        return None
    return "text"


def clean_filename(name: str) -> str:
    """The name without a path or control characters, at most 120 characters."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > 120:
        stem, ext = os.path.splitext(name)
        name = stem[: 120 - len(ext)] + ext
    return name


def prepare(files, per: str = "message") -> list[Prepared]:
    """Check uploaded files (werkzeug FileStorage; empty ones ignored); raise Refused.
    `per` names what the files go with in the count message (a message, a request, a quote)."""
    max_bytes, max_files = limits()
    files = [f for f in files or () if f is not None and getattr(f, "filename", "")]
    if len(files) > max_files:
        raise Refused(f"Attach at most {max_files} files to one {per}.")
    prepared = []
    for upload in files:
        name = clean_filename(upload.filename) or "attachment"
        data = upload.stream.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise Refused(f"{name} is larger than {max_bytes // (1024 * 1024)} MB.")
        if not data:
            raise Refused(f"{name} is empty.")
        kind = sniff(data)
        if kind is None:
            raise Refused(f"{name} cannot be attached: only {ALLOWED_TEXT} are accepted.")
        ext = os.path.splitext(name)[1].lower()
        if ext not in KINDS[kind][1]:
            raise Refused(
                f"{name} is a {KINDS[kind][2]} but its name says otherwise: "
                f"name it {KINDS[kind][1][0]} and try again."
            )
        item = Prepared(filename=name, kind=kind, data=data)
        if kind in IMAGES:
            _reencode(item)
        prepared.append(item)
    return prepared


def _reencode(item: Prepared) -> None:
    """Decode the image, store it re-encoded without metadata, and make its thumbnail."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(item.data)) as probe:
                if probe.width * probe.height > MAX_PIXELS:
                    raise Refused(f"{item.filename} has too many pixels.")
                probe.verify()
            with Image.open(io.BytesIO(item.data)) as image:
                image.load()
                # The orientation is the one EXIF tag worth keeping: apply it to the pixels.
                image = ImageOps.exif_transpose(image)
                clean = image.copy()
                clean.info = {}  # EXIF, XMP, ICC, comments: none is written back
                out = io.BytesIO()
                fmt = IMAGES[item.kind]
                if fmt == "JPEG" and clean.mode not in ("RGB", "L", "CMYK"):
                    clean = clean.convert("RGB")
                clean.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
                item.data = out.getvalue()
                item.width, item.height = clean.size
                thumb = clean.convert("RGBA") if clean.mode == "P" else clean.copy()
                thumb.thumbnail(THUMB_SIZE)
                out = io.BytesIO()
                thumb.save(out, format="PNG")
                item.thumb = out.getvalue()
                item.thumb_key = storage.new_key()
    except Refused:
        raise
    except Exception:  # Pillow raises many kinds for a damaged or hostile file
        raise Refused(f"{item.filename} could not be read as an image.") from None


def store(prepared: list[Prepared]) -> None:
    """Write the bytes (before the transaction that records them: a rollback leaves only
    unreferenced blobs under random names, never a row without its file)."""
    for item in prepared:
        storage.put(item.key, item.data, item.content_type)
        if item.thumb is not None:
            storage.put(item.thumb_key, item.thumb, "image/png")


def record(owner_kind: str, owner_id: int, prepared: list[Prepared], **who) -> list[Attachment]:
    """Create the rows (inside the caller's transaction); `who`: portal_user or staff_user."""
    now = utcnow()
    return [
        Attachment.create(
            key=item.key,
            owner_kind=owner_kind,
            owner_id=owner_id,
            filename=item.filename,
            content_type=item.content_type,
            size=len(item.data),
            thumb_key=item.thumb_key,
            width=item.width,
            height=item.height,
            created_at=now,
            **who,
        )
        for item in prepared
    ]


def for_owners(owner_kind: str, owner_ids) -> dict[int, list[Attachment]]:
    """Attachments of these owners, by owner id, in the order they were sent."""
    found = {}
    owner_ids = list(owner_ids)
    if not owner_ids:
        return found
    query = (
        Attachment.select()
        .where(Attachment.owner_kind == owner_kind, Attachment.owner_id.in_(owner_ids))
        .order_by(Attachment.id)
    )
    for row in query:
        found.setdefault(row.owner_id, []).append(row)
    return found


def by_key(key: str) -> Attachment | None:
    return Attachment.get_or_none(Attachment.key == key) if storage.KEY.match(key or "") else None


def for_customer(user, key: str) -> Attachment | None:
    """The attachment if this portal user may see its owner, else None (404)."""
    row = by_key(key)
    if row is None or row.owner_kind not in _VISIBLE:
        return None
    return row if _VISIBLE[row.owner_kind](user, row.owner_id) else None


def content(row: Attachment, thumb: bool = False) -> tuple[bytes, str] | None:
    """(bytes, content type) of the file or its thumbnail, None when there is none."""
    if thumb:
        if not row.thumb_key:
            return None
        data = storage.get(row.thumb_key)
        return None if data is None else (data, "image/png")
    data = storage.get(row.key)
    return None if data is None else (data, row.content_type)
