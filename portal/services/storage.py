"""Where attachment bytes live: the instance folder (default) or S3-compatible storage.

S3 when `PORTAL_ATTACHMENTS_S3_BUCKET` is set (several hosts share one bucket), with
`PORTAL_ATTACHMENTS_S3_ENDPOINT_URL` (MinIO, Ceph, moto… ; unset for AWS),
`PORTAL_ATTACHMENTS_S3_ACCESS_KEY`, `PORTAL_ATTACHMENTS_S3_SECRET_KEY` and
`PORTAL_ATTACHMENTS_S3_REGION`. Keys are random names made by the attachments service, so a
path here never comes from a client.
"""

import os
import re
import secrets
from pathlib import Path

from flask import current_app

KEY = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def new_key() -> str:
    """A random, unguessable storage key (also the attachment's name in URLs)."""
    return secrets.token_urlsafe(24)


def _check(key: str) -> str:
    if not KEY.match(key or ""):
        raise ValueError("bad storage key")
    return key


def _s3():
    """A boto3 client for the configured bucket, or None for local storage."""
    config = current_app.config
    if not config.get("ATTACHMENTS_S3_BUCKET"):
        return None
    clients = current_app.extensions.setdefault("attachment_s3", {})
    if "client" not in clients:
        import boto3  # the `s3` extra

        clients["client"] = boto3.client(
            "s3",
            endpoint_url=config.get("ATTACHMENTS_S3_ENDPOINT_URL") or None,
            aws_access_key_id=config.get("ATTACHMENTS_S3_ACCESS_KEY") or None,
            aws_secret_access_key=config.get("ATTACHMENTS_S3_SECRET_KEY") or None,
            region_name=config.get("ATTACHMENTS_S3_REGION") or "us-east-1",
        )
    return clients["client"]


def _path(key: str) -> Path:
    # Outside the web root: the instance folder, never static/.
    return Path(current_app.instance_path) / "attachments" / key[:2] / key


def put(key: str, data: bytes, content_type: str) -> None:
    """Store `data` under `key` (written whole: a reader never sees half a file)."""
    _check(key)
    client = _s3()
    if client is not None:
        client.put_object(
            Bucket=current_app.config["ATTACHMENTS_S3_BUCKET"],
            Key=f"attachments/{key}",
            Body=data,
            ContentType=content_type,
        )
        return
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{key}.{os.getpid()}.{secrets.token_hex(6)}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def get(key: str) -> bytes | None:
    """The bytes stored under `key`, or None when there are none."""
    _check(key)
    client = _s3()
    if client is not None:
        try:
            answer = client.get_object(
                Bucket=current_app.config["ATTACHMENTS_S3_BUCKET"], Key=f"attachments/{key}"
            )
        except client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read()
    try:
        return _path(key).read_bytes()
    except FileNotFoundError:
        return None
