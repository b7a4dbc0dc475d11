"""HTTP to regions beyond loopback: httpx, with timeouts, kept-alive connections and TLS.

A local region is a process on this machine, and the gates probe it with the
few lines of HTTP/1.1 in regions/fleet.py and rollout/probes.py (timed from a
rollback's first instruction). A region on another host is reached across a
network the deployer does not own: that needs what a well-kept client does
(``https://`` with certificate checks, proxies left alone, connection pools
with limits, redirects refused), so every URL whose host is not a loopback
address goes through httpx. httpx is imported only when such a URL is met,
never on the CLI's start-up path.

TLS: the system's trust store, or the CA file in ``VEGA_DAG_REGIONS_CA`` (a
private CA for the agents' certificates); ``VEGA_DAG_REGIONS_CERT`` and
``VEGA_DAG_REGIONS_KEY`` give a client certificate for agents that ask for one.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vega_dag.regions.fleet import Response

CA_ENV = "VEGA_DAG_REGIONS_CA"
CERT_ENV = "VEGA_DAG_REGIONS_CERT"
KEY_ENV = "VEGA_DAG_REGIONS_KEY"
#: Remote probes in flight at once (each thread one connection of the pool).
CONCURRENCY = 8

_lock = threading.Lock()
_clients: dict[tuple[str | None, str | None, str | None], Any] = {}


@functools.lru_cache(maxsize=256)
def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return True  # not ours to judge: the local client names what is wrong with it
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: resolved (and reached) by the remote client


def client() -> Any:
    """The process's httpx client for the current TLS settings (thread-safe, pooled)."""
    settings = (os.environ.get(CA_ENV), os.environ.get(CERT_ENV), os.environ.get(KEY_ENV))
    with _lock:
        found = _clients.get(settings)
        if found is None:
            found = _clients[settings] = _new_client(*settings)
        return found


def _new_client(ca: str | None, cert: str | None, key: str | None) -> Any:
    import ssl

    import httpx

    from vega_dag.errors import VegaError

    try:
        context = ssl.create_default_context(cafile=ca)
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise VegaError(f"regions' TLS files ({CA_ENV}/{CERT_ENV}): {err}") from None
    return httpx.Client(
        verify=context,
        # A probe's answer is what the region said: a redirect is an answer.
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        headers={"connection": "keep-alive"},
    )


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> tuple[Response, bool]:
    """(the response as fleet.request gives it, whether a kept-alive connection carried it).

    Errors as fleet.request's: TimeoutError after ``timeout``, another OSError
    when the region cannot be reached, its TLS is refused, or it answers
    something that is not HTTP.
    """
    import httpx

    sent = {"content-type": "application/json", **(headers or {})}
    started = time.perf_counter()
    try:
        answer = client().request(method, url, content=body, headers=sent, timeout=timeout)
    except httpx.TimeoutException as err:
        raise TimeoutError(f"timed out ({type(err).__name__})") from None
    except httpx.HTTPError as err:
        raise ConnectionError(f"{type(err).__name__}: {err}") from None
    seconds = time.perf_counter() - started
    stream = answer.extensions.get("network_stream")
    reused = stream is not None and _seen(stream)
    got = {k.lower(): v for k, v in answer.headers.items()}
    return (answer.status_code, got, answer.content, seconds), reused


_streams: set[int] = set()


def _seen(stream: Any) -> bool:
    """Whether an earlier request used ``stream`` (a pooled connection) too."""
    key = id(stream)
    with _lock:
        if key in _streams:
            return True
        _streams.add(key)
        if len(_streams) > 4096:
            _streams.clear()
        return False


def request_many(
    jobs: list[tuple[str, str, bytes | None]],
    timeout: float,
    headers: dict[str, str] | None = None,
) -> list[tuple[Response, bool] | OSError]:
    """Each (url, method, body) of ``jobs``, ``CONCURRENCY`` at once; results in order."""

    def one(job: tuple[str, str, bytes | None]) -> tuple[Response, bool] | OSError:
        try:
            return request(job[0], job[1], job[2], timeout=timeout, headers=headers)
        except OSError as err:
            return err

    if len(jobs) == 1:
        return [one(jobs[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(CONCURRENCY, len(jobs)), thread_name_prefix="vega-http") as pool:
        return list(pool.map(one, jobs))
