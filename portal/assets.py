"""Vendored front-end files: htmx from the `htmx.org` npm package, pinned and verified.

`make install` runs `python portal/assets.py`, which fetches the pinned tarball with
`npm pack`, checks it against the sha512 integrity the npm registry published for that
version (kept below, so a tarball that changed upstream fails the install), and copies
`htmx.min.js` into `portal/static/vendor/` (not in git; included in the wheel). Never a CDN:
self-hosted portals run offline and under a strict Content-Security-Policy.

To upgrade: change HTMX_VERSION, put `npm view htmx.org@<version> dist.integrity` in
HTMX_INTEGRITY, run `make install`, run the tests (tests/test_ops.py checks the served file).

Standard library only, so it also runs as `python portal/assets.py` before an install.
"""

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HTMX_VERSION = "2.0.11"
# `npm view htmx.org@2.0.11 dist.integrity`
HTMX_INTEGRITY = "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="  # noqa: E501
HTMX_MEMBER = "package/dist/htmx.min.js"

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
HTMX_FILE = VENDOR_DIR / "htmx.min.js"


class IntegrityError(RuntimeError):
    """A fetched tarball is not the one the registry published for the pinned version."""


def integrity_of(data: bytes) -> str:
    """The npm/SRI integrity string (`sha512-<base64>`) of some bytes."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def verify(data: bytes, expected: str | None = None) -> None:
    """Raise IntegrityError unless `data` has the expected (by default the pinned) integrity."""
    expected = expected or HTMX_INTEGRITY
    actual = integrity_of(data)
    if actual != expected:
        raise IntegrityError(f"htmx.org@{HTMX_VERSION}: expected {expected}, got {actual}")


def npm_pack(destination: Path) -> Path:
    """Download the pinned htmx.org tarball with npm into `destination`; returns its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is needed to fetch htmx; install Node.js, or download "
            f"htmx.org-{HTMX_VERSION}.tgz elsewhere and pass it with --tarball"
        )
    subprocess.run(
        [npm, "pack", f"htmx.org@{HTMX_VERSION}", "--pack-destination", str(destination)]
        + ["--loglevel=error"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return destination / f"htmx.org-{HTMX_VERSION}.tgz"


def install_htmx(tarball: Path, target: Path = HTMX_FILE) -> Path:
    """Verify `tarball` and copy its `htmx.min.js` to `target`; returns `target`."""
    data = tarball.read_bytes()
    verify(data)
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(HTMX_MEMBER)
        if member is None:
            raise IntegrityError(f"{tarball} has no {HTMX_MEMBER}")
        script = member.read()
    if f'version:"{HTMX_VERSION}"'.encode() not in script:
        raise IntegrityError(f"{HTMX_MEMBER} does not say it is version {HTMX_VERSION}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_bytes(script)
    partial.replace(target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="a downloaded htmx.org tarball to use")
    args = parser.parse_args(argv)
    try:
        if args.tarball:
            target = install_htmx(args.tarball)
        else:
            with tempfile.TemporaryDirectory() as folder:
                target = install_htmx(npm_pack(Path(folder)))
    except (IntegrityError, RuntimeError, subprocess.CalledProcessError, OSError) as error:
        print(f"htmx not installed: {error}", file=sys.stderr)
        return 1
    print(f"htmx.org {HTMX_VERSION} verified ({HTMX_INTEGRITY[:23]}...) -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
