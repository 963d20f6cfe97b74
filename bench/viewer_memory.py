"""Where a viewer's memory goes when browsers leave: Python objects (tracemalloc) beside the process's RSS.

The server runs in this process (so tracemalloc sees it); one visitor comes and goes first so the shared caches
exist, then N browsers join over websockets, click once each and leave. Printed: RSS and traced Python memory
before and after, the `ClientView`s and splat sets still alive, and the largest traced growth. When traced memory
returns and RSS does not, the rest is the allocator's and the threads' (not objects splatseg holds).

    python -m bench.viewer_memory --clients 10
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from .viewer_load import TOKEN, _answered, _make_scene, _rss_mb


def measure(clients: int = 10, num_gaussians: int = 50_000, port: int = 18977) -> dict[str, object]:
    from viewer.app import ViewerApp
    from viewer.client_view import ClientView
    from viewer.memory import return_freed_memory
    from viewer.splats import ChunkedSplats
    from viewer.ws_client import ViserWsClient

    with tempfile.TemporaryDirectory() as tmp:
        app = ViewerApp(_make_scene(Path(tmp), num_gaussians), port=port, token=TOKEN, verbose=False)
        try:

            def visit(n: int) -> None:
                browsers = []
                for _ in range(n):
                    b = ViserWsClient(app.url)
                    b.enter_token(TOKEN, timeout=60)
                    browsers.append(b)
                for b in browsers:
                    b.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=120)
                for b in browsers:
                    mark = len(b.messages)
                    b.click()
                    b.wait_for(_answered, timeout=120, start=mark)
                time.sleep(4.0)  # the dimmed copies follow the first frame
                for b in browsers:
                    b.close()
                deadline = time.monotonic() + 30
                while app.session.client_count and time.monotonic() < deadline:
                    time.sleep(0.2)
                app.updates.drain(30)
                time.sleep(2.0)
                return_freed_memory()

            visit(1)
            tracemalloc.start(1)
            before, rss_before = tracemalloc.get_traced_memory()[0], _rss_mb(os.getpid())
            snap0 = tracemalloc.take_snapshot()
            visit(clients)
            gc.collect()
            after, rss_after = tracemalloc.get_traced_memory()[0], _rss_mb(os.getpid())
            growth = tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:5]
            alive = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (ClientView, ChunkedSplats))]
            return {
                "clients": clients,
                "rss_before_mb": round(rss_before, 1),
                "rss_after_mb": round(rss_after, 1),
                "traced_before_mb": round(before / 1e6, 2),
                "traced_after_mb": round(after / 1e6, 2),
                "views_or_splats_alive": len(alive),
                "largest_traced_growth": [str(s) for s in growth],
            }
        finally:
            tracemalloc.stop()
            app.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--gaussians", type=int, default=50_000)
    p.add_argument("--port", type=int, default=18977)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.clients, args.gaussians, args.port), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
