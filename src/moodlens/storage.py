"""Where media and results live: local paths, or s3://bucket/key through boto3.

boto3 reads the standard AWS configuration (environment, profiles, instance roles, and
AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3), so MinIO, moto and real S3 all work unchanged.
An S3 object is spooled to a temporary file in chunks before it is analysed: a video is
never held in memory whole, and the decoder gets the seekable file it needs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from moodlens.errors import MoodlensError
from moodlens.media import MEDIA_SUFFIXES, expand_path

S3 = "s3://"


class StorageError(MoodlensError):
    """An S3 location that can't be read or written, said in one line."""


def is_s3(uri: str | Path) -> bool:
    return str(uri).startswith(S3)


def split_s3(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); the key may be empty (a whole bucket)."""
    bucket, _, key = uri[len(S3):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: no bucket in this S3 URI")
    return bucket, key


@lru_cache(maxsize=1)
def s3_client() -> Any:
    try:
        import boto3
    except ImportError as err:
        raise StorageError("s3:// paths need boto3: pip install 'moodlens[scale]'") from err
    return boto3.client("s3")


def _s3_failure(uri: str, err: Exception) -> StorageError:
    """One line for an S3 error, whatever botocore raised."""
    code = getattr(err, "response", {}).get("Error", {}).get("Code")
    if code in ("404", "NoSuchKey", "NotFound"):
        return StorageError(f"{uri}: no such S3 object")
    if code == "NoSuchBucket":
        return StorageError(f"{uri}: no such S3 bucket")
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageError(f"{uri}: access denied by S3 ({code})")
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return StorageError(f"{uri}: S3 request failed ({reason})")


def _s3_call(uri: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(*args, **kwargs)
    except (BotoCoreError, ClientError) as err:
        raise _s3_failure(uri, err) from None


def list_s3(uri: str) -> list[str]:
    """The media objects under an s3:// prefix, or the one object it names."""
    bucket, key = split_s3(uri)
    client = s3_client()
    if key and not key.endswith("/"):
        return [uri]  # one object: the decoder, not the name, decides whether it is media
    found: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    pages = _s3_call(uri, lambda: list(paginator.paginate(Bucket=bucket, Prefix=key)))
    for page in pages:
        for item in page.get("Contents", []):
            name = item["Key"]
            if PurePosixPath(name).suffix.lower() in MEDIA_SUFFIXES:
                found.append(f"{S3}{bucket}/{name}")
    if not found:
        raise StorageError(f"{uri}: no media objects under this S3 prefix")
    return sorted(found)


def expand_inputs(specs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files, folders, globs, text files listing paths or URIs (`@list.txt` or any *.txt), and
    s3:// prefixes -> (inputs, one-line errors for the specs that gave nothing)."""
    inputs: list[str] = []
    problems: list[str] = []
    for spec in specs:
        try:
            inputs.extend(_expand_one(spec))
        except MoodlensError as err:
            problems.append(str(err))
    return list(dict.fromkeys(inputs)), problems


def _expand_one(spec: str) -> list[str]:
    if is_s3(spec):
        return list_s3(spec)
    listing = spec[1:] if spec.startswith("@") else spec
    if listing.lower().endswith(".txt") and Path(listing).is_file():
        lines = Path(listing).read_text(encoding="utf-8").splitlines()
        entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        base = Path(listing).parent
        return [e if is_s3(e) or Path(e).is_absolute() else str(base / e) for e in entries]
    if glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise StorageError(f"{spec}: no files match this pattern")
        return [str(p) for m in matches for p in expand_path(m)]
    return [str(p) for p in expand_path(spec)]


def input_stem(uri: str) -> str:
    return PurePosixPath(uri).stem if is_s3(uri) else Path(uri).stem


@contextlib.contextmanager
def local_copy(uri: str, folder: str | Path | None = None) -> Iterator[Path]:
    """A local path for the input: the file itself, or an S3 object spooled to a temporary file
    (removed afterwards) that keeps the object's suffix."""
    if not is_s3(uri):
        yield Path(uri)
        return
    bucket, key = split_s3(uri)
    handle, name = tempfile.mkstemp(suffix=PurePosixPath(key).suffix[:16], prefix="moodlens-", dir=folder)
    os.close(handle)
    try:
        # download_file streams in parts to disk; nothing holds the whole object in memory
        _s3_call(uri, s3_client().download_file, bucket, key, name)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


@dataclass(frozen=True)
class Destination:
    """A folder or an s3:// prefix that results are written into by name."""

    uri: str

    def _key(self, name: str) -> tuple[str, str]:
        bucket, prefix = split_s3(self.uri)
        return bucket, (prefix.rstrip("/") + "/" + name) if prefix.strip("/") else name

    def exists(self, name: str) -> bool:
        if not is_s3(self.uri):
            return (Path(self.uri) / name).is_file()
        from botocore.exceptions import ClientError

        bucket, key = self._key(name)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _s3_failure(f"{self.uri}/{name}", err) from None

    def write_text(self, name: str, text: str) -> str:
        """Writes `name` and returns where it went."""
        if not is_s3(self.uri):
            path = Path(self.uri) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)  # a reader never sees half a file
            return str(path)
        bucket, key = self._key(name)
        _s3_call(self.uri, s3_client().put_object, Bucket=bucket, Key=key, Body=text.encode("utf-8"))
        return f"{S3}{bucket}/{key}"

    def remove(self, name: str) -> None:
        if not is_s3(self.uri):
            (Path(self.uri) / name).unlink(missing_ok=True)
            return
        bucket, key = self._key(name)
        _s3_call(self.uri, s3_client().delete_object, Bucket=bucket, Key=key)


@contextlib.contextmanager
def local_tree(uri: str) -> Iterator[Path]:
    """A local folder for `uri`: the folder itself, or every object under an s3:// prefix
    downloaded (streamed, one object at a time) into a temporary folder, removed afterwards."""
    if not is_s3(uri):
        yield Path(uri)
        return
    bucket, prefix = split_s3(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    client = s3_client()
    with tempfile.TemporaryDirectory(prefix="moodlens-") as folder:
        count = 0
        pages = _s3_call(uri, lambda: list(client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)))
        for page in pages:
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):]
                if not relative or relative.endswith("/") or ".." in PurePosixPath(relative).parts:
                    continue
                target = Path(folder) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                _s3_call(uri, client.download_file, bucket, item["Key"], str(target))
                count += 1
        if not count:
            raise StorageError(f"{uri}: nothing under this S3 prefix")
        yield Path(folder)


@contextlib.contextmanager
def staged_output(uri: str) -> Iterator[Path]:
    """A local path to write `uri` to: the path itself, or a temporary file that is uploaded to
    the s3:// URI once the block ends without an error."""
    if not is_s3(uri):
        yield Path(uri)
        return
    bucket, key = split_s3(uri)
    if not key or key.endswith("/"):
        raise StorageError(f"{uri}: name the object to write, not a prefix")
    with tempfile.TemporaryDirectory(prefix="moodlens-") as folder:
        path = Path(folder) / PurePosixPath(key).name
        yield path
        _s3_call(uri, s3_client().upload_file, str(path), bucket, key)
