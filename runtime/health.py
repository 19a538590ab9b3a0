"""The health endpoint: a running show answers HTTP GET with its vital signs as JSON,
for `run_show.py status SHOW`, a monitoring system, or `curl -f`.

The frame loop builds a report a couple of times a second (`Vitals.report`, a few
microseconds) and hands it over (`HealthServer.publish`); the server's own thread
works out the rest of the newest report when asked and judges it (`serve`), and
never touches GL or the generator.
Because the judgement runs at request time, a frame loop that stopped presenting
frames reads as unhealthy even though it no longer publishes anything.

    {"show": "installation", "healthy": true, "problems_now": [], "uptime_s": 3600.2,
     "fps": 29.9, "frame_p50_ms": 4.1, "frame_p99_ms": 9.8, "late_frames": 3,
     "generator": {"fps": 11.8, "errors": 0, ...}, "inputs": [...], "rejected": {},
     "memory_rss_mb": 612.0, "gpu_memory_mb": null, "schedule": "open", ...}

GET answers 200 when healthy and 503 when not, with the same JSON either way.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.errors import ShowError
from runtime.show import HealthConfig

if TYPE_CHECKING:
    from runtime.loop import FrameStats
    from runtime.player import Player

log = logging.getLogger(__name__)

#: Unhealthy when no frame was presented for this long.
STALE_S = 5.0
#: Unhealthy when, while open, the generator delivered nothing for this long...
GENERATOR_STALE_S = 10.0
#: ...once the show has been up this long (loading a model takes a while).
START_GRACE_S = 30.0
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def serve(report: dict[str, Any], now_s: float) -> dict[str, Any]:
    """The report as served: judged, with what is costly to compute worked out here,
    on the server's thread, rather than on the frame loop's.

    Args:
        report: a report from `Vitals.report` (`published_s` is time.monotonic(),
            `work_ms` the recent frame work times).
        now_s: time.monotonic() now.
    Returns:
        A new dict: the report without those two keys, plus `frame_p50_ms`,
        `frame_p99_ms`, `memory_rss_mb`, `last_frame_age_s`, `healthy` (bool) and
        `problems_now` (why not healthy; empty when healthy).
    Thread: any.
    """
    served = dict(report)
    age_s = max(now_s - served.pop("published_s"), 0.0)
    work_ms = served.pop("work_ms", ())
    p50, p99 = np.percentile(work_ms, [50, 99]) if len(work_ms) else (0.0, 0.0)
    reasons = []
    if age_s > STALE_S:
        reasons.append(f"no frame presented for {age_s:.0f} s")
    quiet_s = report.get("generator_quiet_s")
    if quiet_s is not None and quiet_s > GENERATOR_STALE_S:
        errors = report["generator"]["errors"]
        reasons.append(f"the generator delivered no frame for {quiet_s:.0f} s ({errors} errors)")
    served.update(
        frame_p50_ms=round(float(p50), 2),
        frame_p99_ms=round(float(p99), 2),
        memory_rss_mb=_rss_mb(),
        last_frame_age_s=round(age_s, 3),
        healthy=not reasons,
        problems_now=reasons,
    )
    return served


class Vitals:
    """Builds health reports from a running show's parts.

    Args:
        player: the show's parts.
        stats: the live loop's frame statistics.
    Thread: main (the frame loop).
    """

    def __init__(self, player: Player, stats: FrameStats) -> None:
        self.player = player
        self.stats = stats
        self.started_s = time.monotonic()
        self._frames_at = (0, self.started_s)
        self._generated_at = (0, self.started_s)

    def report(self, *, schedule: str | None = None, monitor: str | None = None) -> dict[str, Any]:
        """A snapshot of the show's vital signs (plain data, safe to hand to another
        thread); what costs more than a few microseconds (percentiles, reading
        /proc) is left to `serve`.

        Args:
            schedule: the opening-hours state ("open", "closing", "closed",
                "opening"), or None without a schedule.
            monitor: where the window is (the monitor's name), if known.
        Thread: main.
        """
        now = time.monotonic()
        player, stats = self.player, self.stats
        frames, since = self._frames_at
        fps = (stats.frames - frames) / (now - since) if now > since else 0.0
        self._frames_at = (stats.frames, now)
        # With two decks either one delivering counts: deck A rests at deck.mix 1.
        generated = player.frames_generated + (player.decks.rendered_b if player.decks else 0)
        resting = schedule == "closed"
        # A generator resting through closed hours is not a quiet one.
        if resting or generated != self._generated_at[0]:
            self._generated_at = (generated, now)
        uptime_s = now - self.started_s
        quiet_s = None
        if not resting and uptime_s > START_GRACE_S:
            quiet_s = round(now - self._generated_at[1], 1)
        problems = player.problems()
        g = player.generator
        rejected = getattr(player.bus, "rejected", dict)()
        return {
            "show": player.show.name,
            "pid": os.getpid(),
            "published_s": now,
            "uptime_s": round(uptime_s, 1),
            "fps": round(fps, 2),
            "frames": stats.frames,
            "work_ms": tuple(stats.work_ms),
            "late_frames": stats.late,
            "generator": {
                "kind": g.kind,
                "device": str(g.device),
                # worker.fps() is the rate of its last frames, however long ago.
                "fps": 0.0 if resting else round(player.worker.fps(), 2),
                "frames": generated,
                "errors": player.worker.errors,
                "last_error": player.worker.last_error,
            },
            "generator_quiet_s": quiet_s,
            "inputs": [source.status() for source in player.inputs],
            "rejected": dict(rejected),
            "gpu_memory_mb": _gpu_mb(),
            "schedule": schedule,
            "monitor": monitor,
            "problems": problems,
            "last_problem": problems[-1] if problems else None,
        }


def _rss_mb() -> float:
    """Resident memory now (from /proc), or the peak where there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return round(int(f.read().split()[1]) * _PAGE_BYTES / 2**20, 1)
    except (OSError, IndexError, ValueError):
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak_kb / 1024, 1)


def _gpu_mb() -> float | None:
    """torch's CUDA memory in use, or None where CUDA was never started."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.memory_allocated() / 2**20, 1)


class HealthServer:
    """Serves the newest published report over HTTP on its own thread.

    Args:
        config: the show's `[health]` table.
    Attributes:
        port: the port it listens on (the configured one, or the one the system
            chose for port 0).
    Raises:
        OSError: the address cannot be bound (a port in use).
    Thread: construct, publish and close from main; the server runs on its own.
    """

    def __init__(self, config: HealthConfig) -> None:
        self._report: dict[str, Any] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/", "/health"):
                    self.send_error(404, "GET / or /health")
                    return
                status, body = server.answer()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health %s: " + format, self.address_string(), *args)

        server_class = _ServerV6 if ":" in config.host else ThreadingHTTPServer
        self._httpd = server_class((config.host, config.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="health"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("health on http://%s:%d/", config.host, self.port)

    def publish(self, report: dict[str, Any]) -> None:
        """Replace the report served (one reference swap). Thread: main."""
        self._report = report

    def answer(self) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for a GET now. Thread: the server's."""
        report = self._report
        if report is None:
            served: dict[str, Any] = {
                "healthy": False,
                "problems_now": ["starting: no frame presented yet"],
            }
        else:
            served = serve(report, time.monotonic())
        return (200 if served["healthy"] else 503), json.dumps(served).encode()

    def close(self) -> None:
        """Stop serving and free the port. Thread: main."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2.0)


class _ServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def fetch(config: HealthConfig, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """Ask a running show for its health.

    Args:
        config: the show's `[health]` table.
        timeout_s: how long to wait for an answer.
    Returns:
        The served JSON (an unhealthy show answers too: see `healthy`).
    Raises:
        ShowError: nothing answers there, or the answer is not the show's JSON.
    Thread: any.
    """
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)
    url = f"http://{host}:{config.port}/" if ":" not in host else f"http://[{host}]:{config.port}/"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the report
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ShowError(f"no answer from {url}: {reason}; is the show running?") from None
    try:
        served = json.loads(body)
    except ValueError:
        raise ShowError(f"{url} answered, but not with a show's health JSON") from None
    if not isinstance(served, dict) or "healthy" not in served:
        raise ShowError(f"{url} answered, but not with a show's health JSON")
    return served
