"""What a delay proxy costs: CPU per request and per MB, the new one against the old one.

The WAN scenarios put a proxy in front of each server; its CPU is taken from the same two
cores as the tools and the servers, so it must cost far less than they do. One
``rclone serve s3`` holds 1 KiB and 1 MiB objects; 16 threads of a lean-client loop GET
them through each proxy (no delay): the small objects give the cost per request, the large
ones the cost per MB. benchmarks/delay_proxy.py reports its own process's CPU; FaultProxy
(tests/support/faultproxy.py, threads of this process) is measured with this process's CPU
minus the same loop run directly against the server.

    .venv/bin/python -m benchmarks.proxy_cost   # about a minute; benchmarks/results/proxy_cost.json
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from botocore.credentials import Credentials

from benchmarks.delay_proxy import DelayProxy
from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.s3servers import RcloneS3Server
from mastodon_s3_sync.storage.lean import LeanObjects
from mastodon_s3_sync.storage.s3 import make_client
from tests.support.faultproxy import FaultProxy

RESULTS_JSON = Path(__file__).parent / "results" / "proxy_cost.json"
THREADS = 16
SMALL_REQUESTS = 4000
LARGE_REQUESTS = 400
MIB = 1024 * 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _gets(server: RcloneS3Server, url: str, key: str, count: int) -> float:
    """``count`` GETs of ``key`` through ``url`` in 16 threads; this process's CPU seconds."""
    client = make_client(replace(server.bucket_settings("bench"), endpoint_url=url), THREADS)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    objects = LeanObjects(client, "bench", THREADS, credentials=credentials, verify=True)

    def one(_: int) -> None:
        body = objects.get_object(key)["Body"]
        body.read()
        body.close()

    started = _cpu()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(count)))
    return _cpu() - started


def _measure(
    server: RcloneS3Server, proxy_cpu: Callable[[str, str, int], float]
) -> dict[str, float]:
    small = proxy_cpu("small", "1 KiB", SMALL_REQUESTS)
    large = proxy_cpu("large", "1 MiB", LARGE_REQUESTS)
    per_request = small / SMALL_REQUESTS
    per_mb = max(0.0, large / LARGE_REQUESTS - per_request) / (MIB / 1e6)
    return {"cpu_ms_per_request": per_request * 1000, "cpu_ms_per_mb": per_mb * 1000}


def main() -> None:
    results: dict[str, dict[str, float]] = {}
    with RcloneS3Server() as server:
        client = server.client()
        create_bucket(client, "bench")
        client.put_object(Bucket="bench", Key="small", Body=b"x" * 1024)
        client.put_object(Bucket="bench", Key="large", Body=b"y" * MIB)

        def direct(key: str, _label: str, count: int) -> float:
            return _gets(server, server.endpoint_url, key, count)

        baseline = {
            key: direct(key, "", count)
            for key, count in (("small", SMALL_REQUESTS), ("large", LARGE_REQUESTS))
        }

        def delay_proxy(key: str, _label: str, count: int) -> float:
            with DelayProxy(server.endpoint_url, 0.0) as proxy:
                before = proxy.stats().cpu_seconds
                _gets(server, proxy.url, key, count)
                return proxy.stats().cpu_seconds - before

        def fault_proxy(key: str, _label: str, count: int) -> float:
            with FaultProxy(server.endpoint_url) as proxy:
                return _gets(server, proxy.url, key, count) - baseline[key]

        started = time.perf_counter()
        results["benchmarks/delay_proxy.py (splice, own process)"] = _measure(server, delay_proxy)
        results["tests/support/faultproxy.py (threads)"] = _measure(server, fault_proxy)
    document = {
        "threads": THREADS,
        "small_requests": SMALL_REQUESTS,
        "large_requests": LARGE_REQUESTS,
        "seconds": round(time.perf_counter() - started, 1),
        "proxies": results,
    }
    RESULTS_JSON.parent.mkdir(exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(document, indent=1) + "\n")
    for name, figures in results.items():
        print(
            f"{name}: {figures['cpu_ms_per_request']:.3f} ms CPU per request, "
            f"{figures['cpu_ms_per_mb']:.3f} ms per MB"
        )


if __name__ == "__main__":
    main()
