"""Load bench: N authenticated browsers clicking while an attacker guesses the token, on 127.0.0.1.

The server is `splatseg view --token` in its own process (so its RSS is its own); the browsers are
`viewer.ws_client.ViserWsClient`s speaking viser's protocol. Each browser clicks at a human pace (one click, wait
for the status line that answers it, then about `pause` s); a click's latency is send → answer. The run is split in two:
the first half with the browsers alone, the second with `attackers` connections guessing tokens as fast as the
server answers. Reported: click p50/p95 in both halves and their ratio, the token checks the attacker got (the rest
were refused unchecked), and the server's RSS before the browsers came (after one visitor has clicked and left,
so the shared click caches exist) and a few seconds after they left.

    python -m bench.viewer_load --clients 20 --seconds 60    (or: splatseg bench --section load)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import Figure, percentile

TOKEN = "bench-token-0123456789abcdef"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentile(values: list[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def _make_scene(workdir: Path, num_gaussians: int) -> Path:
    from backend.io.cameras import write_inria_cameras
    from backend.io.ply import write_ply
    from backend.synthetic import build_tabletop, orbit_cameras

    from .viewer import write_click_workspace

    synth = build_tabletop(seed=0, num_gaussians=num_gaussians)
    scene_dir = workdir / "scene"
    scene_dir.mkdir(parents=True, exist_ok=True)
    write_ply(scene_dir / "point_cloud.ply", synth.scene)
    write_inria_cameras(scene_dir / "cameras.json", orbit_cameras(synth, views=4, resolution=128, seed=0))
    write_click_workspace(scene_dir, synth.object_labels, synth.part_labels, synth.scene.means)
    return scene_dir


def _answered(message: dict[str, Any]) -> bool:
    text = str(message.get("updates", message.get("props", "")))
    return "Gaussians selected" in text or "Notification" in message.get("type", "")


def bench_viewer_load(
    *,
    clients: int = 20,
    seconds: float = 60.0,
    attackers: int = 5,
    num_gaussians: int = 50_000,
    pause: float = 2.0,
    port: int = 18950,
) -> dict[str, Any]:
    from viewer.hints import FEATURES_LOADED
    from viewer.ws_client import ViserWsClient

    with tempfile.TemporaryDirectory() as tmp:
        scene = _make_scene(Path(tmp), num_gaussians)
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "view", str(scene), "--port", str(port), "--token", TOKEN],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url, loaded = None, False
            for line in server.stdout:  # type: ignore[union-attr]
                if "open http" in line:
                    url = line.split("open ")[1].split()[0]
                # `view` loads the features after it starts serving: the baselines are taken with them in.
                loaded = loaded or FEATURES_LOADED in line or "features not loaded" in line
                if url is not None and loaded:
                    break
            if url is None or not loaded:
                raise RuntimeError("the viewer did not start, or did not load its features")
            time.sleep(1.0)
            rss_idle = _rss_mb(server.pid)
            # Baseline: the server as one visitor leaves it (the click's shared caches built, the visitor gone).
            warm = ViserWsClient(url)
            warm.enter_token(TOKEN, timeout=30)
            warm.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=60)
            mark = len(warm.messages)
            warm.click()
            warm.wait_for(_answered, timeout=60, start=mark)
            warm.close()
            time.sleep(3.0)
            rss_before = _rss_mb(server.pid)
            browsers = []
            for _ in range(clients):
                b = ViserWsClient(url)
                b.enter_token(TOKEN, timeout=30)
                browsers.append(b)
            for b in browsers:
                b.wait_for(lambda m: "GaussianSplats" in m.get("type", ""), timeout=60)
            for b in browsers:  # warm-up: the first click pays for lazy allocations (ray caster, filters)
                mark = len(b.messages)
                b.click()
                b.wait_for(_answered, timeout=60, start=mark)
            rss_connected = _rss_mb(server.pid)
            half = seconds / 2
            latencies: dict[str, list[float]] = {"alone": [], "attacked": []}
            unanswered, busy = [0], [0]
            lock = threading.Lock()
            start = time.monotonic()
            stop = start + seconds

            def browse(b: ViserWsClient, seed: int) -> None:
                rng = random.Random(seed)
                while time.monotonic() < stop:
                    mark = len(b.messages)
                    phase = "alone" if time.monotonic() - start < half else "attacked"
                    t0 = time.perf_counter()
                    b.click(rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
                    try:
                        i = b.wait_for(_answered, timeout=10, start=mark)
                        with lock:
                            latencies[phase].append(b.arrivals[i] - t0)
                            busy[0] += "Busy" in str(b.messages[i])  # answered, but only with "try again"
                    except TimeoutError:
                        with lock:
                            unanswered[0] += 1
                    time.sleep(rng.uniform(0.5, 1.5) * pause)

            attacker: list[subprocess.Popen] = []

            def attack() -> None:  # in its own process: its Python work must not slow the browsers' readers here
                while time.monotonic() - start < half:
                    time.sleep(0.05)
                attacker.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "bench.viewer_load", "--attack", url),
                            *("--seconds", str(stop - time.monotonic()), "--attackers", str(attackers)),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )

            threads = [threading.Thread(target=browse, args=(b, i)) for i, b in enumerate(browsers)]
            threads.append(threading.Thread(target=attack))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            attack_report = json.loads(attacker[0].communicate(timeout=60)[0]) if attacker else {}
            for b in browsers:
                b.close()
            time.sleep(5.0)
            rss_after = _rss_mb(server.pid)
            # The attacker's checked tries: count what a fresh probe from the same address is told.
            alone, attacked = latencies["alone"], latencies["attacked"]
            return {
                "clients": clients,
                "seconds": seconds,
                "gaussians": num_gaussians,
                "clicks_alone": len(alone),
                "click_p50_s": _percentile(alone, 50),
                "click_p95_s": _percentile(alone, 95),
                "clicks_attacked": len(attacked),
                "click_attacked_p50_s": _percentile(attacked, 50),
                "click_attacked_p95_s": _percentile(attacked, 95),
                "attacked_p95_ratio": _percentile(attacked, 95) / max(_percentile(alone, 95), 1e-9),
                "unanswered_clicks": unanswered[0],
                "busy_answers": busy[0],
                **{f"attacker_{k}": v for k, v in attack_report.items()},
                "rss_idle_mb": rss_idle,
                "rss_before_mb": rss_before,
                "rss_connected_mb": rss_connected,
                "rss_after_mb": rss_after,
                "rss_after_ratio": rss_after / rss_before,
            }
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def load_figures(*, quick: bool) -> list[Figure]:
    """The `load` section of `splatseg bench`: 20 browsers for 60 s (quick: 10 for 20 s), an attacker in the second
    half."""
    r = bench_viewer_load(clients=10 if quick else 20, seconds=20.0 if quick else 60.0)
    who = f"{r['clients']} clients, {r['gaussians'] // 1000}k Gaussians"
    return [
        Figure("load", f"click answered p50, {who}", r["click_p50_s"], "s", f"p95 {r['click_p95_s']:.2f} s"),
        Figure(
            "load",
            f"click answered p95 under a token-guessing attacker, {who}",
            r["click_attacked_p95_s"],
            "s",
            f"{r['attacked_p95_ratio']:.2f}× the p95 without; {r['unanswered_clicks']} unanswered, "
            f"{r['busy_answers']} answered 'busy'",
        ),
        Figure(
            "load",
            f"attacker's token checks in its {r.get('attacker_seconds', 0):.0f} s (one address; limit 10 a minute)",
            r.get("attacker_guesses_checked", 0),
            "tries",
            f"of {r.get('attacker_guesses_sent', 0)} guesses sent",
        ),
        Figure(
            "load",
            "server RSS after the clients left / before they came",
            r["rss_after_ratio"],
            "ratio",
            f"{r['rss_before_mb']:.0f} → {r['rss_connected_mb']:.0f} (connected) → {r['rss_after_mb']:.0f} MB",
        ),
    ]


def attack(url: str, *, seconds: float, connections: int, rate: float = 50.0) -> dict[str, Any]:
    """`connections` guessing loops from this address, each `rate` guesses a second (the issue's attacker managed
    228 a second with 10 connections), reconnecting whenever the server closes one. Returns what they got."""
    from viewer.ws_client import ViserWsClient

    stop = time.monotonic() + seconds
    sent, checked, refused, reconnects = [0], [0], [0], [0]
    lock = threading.Lock()

    def loop(seed: int) -> None:
        client = None
        i = 0
        while time.monotonic() < stop:
            try:
                if client is None or client.closed.is_set():
                    if client is not None:
                        _tally(client)
                        with lock:
                            reconnects[0] += 1
                    client = ViserWsClient(url)
                    box, button = client.wait_gui("Access token", 30), client.wait_gui("Open scene", 30)
                client.set_value(box, f"guess-{seed}-{i}")
                client.set_value(button, True)
                i += 1
                with lock:
                    sent[0] += 1
                time.sleep(1.0 / rate)
            except Exception:
                time.sleep(0.05)
        if client is not None:
            time.sleep(1.0)  # the last answers
            _tally(client)
            client.close()

    def _tally(client: ViserWsClient) -> None:
        notes = client.notifications()
        with lock:
            checked[0] += notes.count("Wrong token")
            refused[0] += notes.count("Too many wrong tokens")

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "guesses_sent": sent[0],
        "guesses_checked": checked[0],
        "seconds": seconds,
        "refusal_notices": refused[0],
        "reconnects": reconnects[0],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--attackers", type=int, default=5)
    p.add_argument("--gaussians", type=int, default=50_000)
    p.add_argument("--pause", type=float, default=2.0, help="mean seconds a browser waits between clicks")
    p.add_argument("--port", type=int, default=18950)
    p.add_argument("--attack", metavar="URL", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.attack:
        print(json.dumps(attack(args.attack, seconds=args.seconds, connections=args.attackers)))
        return 0
    figures = bench_viewer_load(
        clients=args.clients,
        seconds=args.seconds,
        attackers=args.attackers,
        num_gaussians=args.gaussians,
        pause=args.pause,
        port=args.port,
    )
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
