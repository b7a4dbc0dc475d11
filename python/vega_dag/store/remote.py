"""The shared store and build cache on S3 (``[tool.vega.backend] store``).

The local store stays the working store; the remote is a read-through,
write-behind layer over it, laid out as

- ``<prefix>/cas/<blake3 hex>``: an object's bytes, written once
  (``If-None-Match: *``) with an ``x-amz-checksum-sha256`` the server checks
  (SeaweedFS and S3 refuse a body that does not match with BadDigest);
- ``<prefix>/ac/<key hex>``: an action's output digest (``blake3:<hex>``),
  written once, after the object it names.

A reader trusts neither: an entry counts only when the object it names is
fetched and hashes to its digest (BLAKE3, before anything enters the local
store), so a damaged or substituted object is refused and the action runs
here, the ``--explain`` line saying why. Turborepo's and Bazel's remote
caches have the same two parts (an action cache over a CAS).

The client is obstore (Rust's object_store): conditional puts, SHA-256
checksums on upload, the AWS environment for endpoint, region and
credentials (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, web identity,
instance metadata), and an import and first request cheap enough for a
build that is otherwise lookups (boto3's client alone costs more here than
a no-op build). Requests run in parallel from a thread pool: obstore
releases the GIL while it waits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

import msgspec

from vega_dag import _core
from vega_dag.errors import VegaError
from vega_dag.store_url import LOCAL as LOCAL  # re-exported: the names moved
from vega_dag.store_url import STORE_ENV as STORE_ENV
from vega_dag.store_url import RemoteConfigError as RemoteConfigError
from vega_dag.store_url import parse_store_url as parse_store_url
from vega_dag.store_url import store_url as store_url

if TYPE_CHECKING:
    from obstore.store import S3Config


_DIGEST = re.compile(re.escape(_core.DIGEST_PREFIX) + r"[0-9a-f]{64}")
_S3_CODE = re.compile(r"<Code>(\w+)</Code>")
_T = TypeVar("_T")
_R = TypeVar("_R")
#: Requests in flight at once: enough to hide the round trip of small
#: objects, few enough for a laptop's link and a 2-core CI runner.
PARALLEL = 32
#: A cold build's outputs are also shared as one pack when they add up to
#: no more than this: a second machine then makes 2 requests, not 2 per module.
PACK_LIMIT = 64 << 20


class RemoteError(VegaError):
    """The remote refused us in a way a build must not shrug off (credentials, permissions)."""


def endpoint() -> str:
    """The S3 endpoint, by the AWS convention (``AWS_ENDPOINT_URL``; else AWS itself)."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"):
        value = os.environ.get(name)
        if value:
            return value
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"https://s3.{region}.amazonaws.com"


@dataclass
class Fetched:
    """What a lookup of action keys found: verified outputs, and why the rest missed."""

    #: key → (output digest, its verified bytes)
    hits: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    #: key → why the remote had no usable output for it
    misses: dict[str, str] = field(default_factory=dict)


@dataclass
class Uploaded:
    objects: int = 0
    #: objects (or entries) the remote already held: a write-once put refused
    present: int = 0
    actions: int = 0
    #: why the remote refused our writes (credentials), when it did
    refused: str | None = None


def _code(err: BaseException) -> str:
    m = _S3_CODE.search(str(err))
    return m[1] if m else type(err).__name__


class RemoteCache:
    """The S3 bucket of one ``s3://BUCKET/PREFIX``: lookups, verified fetches, write-once puts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bucket, prefix = parse_store_url(url)
        self.endpoint = endpoint()
        try:
            from obstore.store import S3Store
        except ImportError:
            raise RemoteConfigError(
                url, "the S3 client is not installed: pip install 'vega-dag[s3]' (obstore)"
            ) from None
        from datetime import timedelta

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        config: S3Config = {"endpoint": self.endpoint}
        if region:
            config["region"] = region
        elif "amazonaws.com" not in self.endpoint:
            # S3-compatible services ignore the region but SigV4 needs one.
            config["region"] = "us-east-1"
        self._store = S3Store(
            self.bucket,
            prefix=prefix or None,
            config=config,
            client_options={
                # A plain-HTTP endpoint is one the user named (a test server,
                # a service on the host's network): TLS is the default otherwise.
                "allow_http": self.endpoint.startswith("http://"),
                "connect_timeout": "2s",
                "timeout": "30s",
            },
            # A cache that is down must cost a build seconds, not obstore's
            # default three minutes of retries.
            retry_config={
                "max_retries": 2,
                "retry_timeout": timedelta(seconds=5),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=50),
                    "max_backoff": timedelta(milliseconds=500),
                    "base": 2,
                },
            },
            checksum_algorithm="sha256",
        )
        #: Set when a request could not reach the endpoint: the rest of the
        #: build runs locally and says so once.
        self.down: str | None = None
        #: Digests this process knows the remote holds (fetched or written).
        self.known: set[str] = set()
        #: Digests whose remote copy failed its BLAKE3 check: an upload repairs them.
        self.damaged: set[str] = set()

    def where(self) -> str:
        return f"store {self.url} (endpoint {self.endpoint})"

    # -- requests -------------------------------------------------------------
    def _fail(self, err: BaseException) -> str:
        """Classify a failed request: raise for credentials, note an outage; the reason."""
        from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

        code = _code(err)
        if isinstance(err, PermissionDeniedError | UnauthenticatedError) or code in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ):
            raise RemoteError(
                f"{self.where()}: refused ({code}): check the credentials (AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and the bucket's policy"
            )
        if code == "NoSuchBucket":
            raise RemoteError(f"{self.where()}: bucket {self.bucket} does not exist (create it)")
        first = str(err).splitlines()[0] if str(err) else code
        if self.down is None:
            self.down = f"{self.where()} unreachable: {first}"
        return f"unreachable ({code})"

    def _map(self, fn: Callable[[_T], _R], items: list[_T]) -> list[_R]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(PARALLEL, len(items))) as pool:
            return list(pool.map(fn, items))

    def _get(self, path: str) -> bytes | str:
        """The object's bytes, or (a str) why there are none."""
        import obstore

        if self.down is not None:
            return "remote unreachable"
        try:
            return bytes(obstore.get(self._store, path).bytes())
        except FileNotFoundError as err:
            return self._fail(err) if _code(err) == "NoSuchBucket" else "absent"
        except Exception as err:
            return self._fail(err)

    def _put_once(self, item: tuple[str, bytes]) -> bool | None:
        """Write ``item`` unless the key exists: True written, False present, None failed."""
        return self._put(item, "create")

    def _put(self, item: tuple[str, bytes], mode: Literal["create", "overwrite"]) -> bool | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        path, data = item
        if self.down is not None:
            return None
        try:
            obstore.put(self._store, path, data, mode=mode)
        except (AlreadyExistsError, PreconditionError):
            return False
        except Exception as err:
            self._fail(err)
            return None
        return True

    # -- the cache ------------------------------------------------------------
    def _mode(self, digest: str) -> Literal["create", "overwrite"]:
        return "overwrite" if digest in self.damaged else "create"

    def lookup(self, keys: Iterable[str]) -> Fetched:
        """Each key's output from ``ac/``, fetched from ``cas/`` and verified (BLAKE3).

        One worker takes a key from its entry to its object, so the two
        round trips of a key overlap those of the others.
        """
        keys = list(dict.fromkeys(keys))
        found = Fetched()
        for key, (digest, got) in zip(keys, self._map(self._fetch_one, keys), strict=True):
            if isinstance(got, bytes):
                self.known.add(digest)
                found.hits[key] = (digest, got)
            else:
                found.misses[key] = got
        return found

    def _fetch_one(self, key: str) -> tuple[str, bytes | str]:
        """(output digest, its verified bytes), or (digest or "", why there are none)."""
        entry = self._get(f"ac/{_hex(key)}")
        if isinstance(entry, str):
            return "", f"no entry ac/{_hex(key)[:12]}" if entry == "absent" else entry
        digest = entry.decode("ascii", "replace").strip()
        if _DIGEST.fullmatch(digest) is None:
            return "", f"entry ac/{_hex(key)[:12]} is not a digest: refused"
        data = self._get(f"cas/{_hex(digest)}")
        if isinstance(data, str):
            if data == "absent":
                return digest, f"object {_hex(digest)[:12]} named by its entry is missing"
            return digest, data
        actual = _core.hash_bytes(data)
        if actual != digest:
            self.damaged.add(digest)
            return digest, (
                f"object cas/{_hex(digest)[:12]} is damaged (its bytes hash to "
                f"{_hex(actual)[:12]}): refused"
            )
        return digest, data

    def lookup_pack(self, tree_key: str) -> Fetched:
        """The outputs a cold build of this tree made, as one pack (see ``encode_pack``).

        The pack is an object like any other (its digest checked), and each
        output in it is checked against its own digest before it counts.
        """
        digest, got = self._fetch_one(tree_key)
        found = Fetched()
        if not isinstance(got, bytes):
            found.misses[tree_key] = got
            return found
        try:
            entries = _pack_decoder.decode(got)
        except (msgspec.DecodeError, ValueError):
            found.misses[tree_key] = f"pack {_hex(digest)[:12]} is unreadable: refused"
            return found
        for key, out, data in entries:
            if _core.hash_bytes(data) == out:
                found.hits[key] = (out, data)
                self.known.add(out)
        return found

    def upload(self, objects: dict[str, bytes], actions: dict[str, str]) -> Uploaded:
        """Write ``objects`` (digest → bytes), then the ``actions`` entries naming them.

        Write-once: a key already there is left as it is (the same digest is
        the same bytes; a different entry for a key is the first writer's).
        An entry is written only once its object is known to be there.
        """
        done = Uploaded()
        try:
            self._upload(objects, actions, done)
        except RemoteError as err:
            # Read-only credentials are a fair setup (a developer reading
            # what CI writes): the build stands, the warning says why.
            done.refused = str(err)
        return done

    def _upload(self, objects: dict[str, bytes], actions: dict[str, str], done: Uploaded) -> None:
        items = [(d, data) for d, data in objects.items() if d not in self.known]
        results = self._map(
            # A damaged copy is the one thing a write replaces: its key says
            # what its bytes must be, and these are (the caller made them).
            lambda i: self._put((f"cas/{_hex(i[0])}", i[1]), self._mode(i[0])),
            items,
        )
        for (digest, _), ok in zip(items, results, strict=True):
            if ok is None:
                continue
            self.known.add(digest)
            done.objects += ok
            done.present += not ok
        entries = [(k, d) for k, d in actions.items() if d in self.known]
        results = self._map(
            self._put_once,
            [(f"ac/{_hex(k)}", d.encode()) for k, d in entries],
        )
        done.actions = sum(1 for ok in results if ok)
        done.present += sum(1 for ok in results if ok is False)

    # -- whole deployments (store.ship) ---------------------------------------
    def listing(self) -> set[str]:
        """The digests under ``cas/``, in one listing (paged by the server).

        RemoteError when the remote cannot be listed: a deploy must not
        guess what its regions will find.
        """
        import obstore

        found: set[str] = set()
        try:
            for chunk in obstore.list(self._store, prefix="cas/", chunk_size=1000):
                for meta in chunk:
                    name = str(meta["path"]).rpartition("/")[2]
                    found.add(_core.DIGEST_PREFIX + name)
        except Exception as err:
            self._fail(err)
            raise RemoteError(f"{self.down or self.where()}: cannot list cas/") from None
        return found

    def put_objects(self, items: list[tuple[str, bytes]]) -> list[bool | None]:
        """Write each (digest, bytes) to ``cas/`` once, concurrently: True written, False
        already there, None failed (``down`` says why)."""
        results = self._map(
            lambda i: self._put((f"cas/{_hex(i[0])}", i[1]), self._mode(i[0])), items
        )
        for (digest, _), ok in zip(items, results, strict=True):
            if ok is not None:
                self.known.add(digest)
        return results

    def get_objects(self, digests: list[str]) -> dict[str, bytes | str]:
        """Each digest's bytes from ``cas/``, BLAKE3-checked, concurrently; or (a str) why not."""

        def one(digest: str) -> bytes | str:
            data = self._get(f"cas/{_hex(digest)}")
            if isinstance(data, str):
                return "missing from the store" if data == "absent" else data
            actual = _core.hash_bytes(data)
            if actual != digest:
                self.damaged.add(digest)
                return f"damaged (its bytes hash to {actual}): refused"
            # Repaired since (a deployer re-uploaded it): no longer reported.
            self.damaged.discard(digest)
            return data

        return dict(zip(digests, self._map(one, digests), strict=True))


_pack_decoder = msgspec.msgpack.Decoder(list[tuple[str, str, bytes]])


def encode_pack(entries: dict[str, tuple[str, bytes]]) -> bytes:
    """A pack of (action key, output digest, output bytes), sorted by key."""
    return msgspec.msgpack.encode([(k, d, b) for k, (d, b) in sorted(entries.items())])


def _hex(digest: str) -> str:
    return digest.removeprefix(_core.DIGEST_PREFIX)
