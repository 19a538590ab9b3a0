"""The parts of running unattended that need no window: stop signals become a flag,
sd_notify datagrams reach a real unix socket (path and abstract), the heartbeat
pipe, the supervisor's backoff, and the health endpoint over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runtime.errors import ShowError
from runtime.health import STALE_S, HealthServer, fetch, serve
from runtime.notify import HEARTBEAT_ENV, Heartbeat, Lifeline
from runtime.show import HealthConfig
from runtime.shutdown import StopFlag
from runtime.supervise import MAX_BACKOFF_S, default_crash_log, next_backoff_s


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_sets_the_flag_and_the_old_handler_returns(signum):
    before = signal.getsignal(signum)
    with StopFlag() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signum)
        time.sleep(0.01)  # the handler runs between bytecodes of the main thread
        assert stop.requested and stop.reason == signal.Signals(signum).name
    assert signal.getsignal(signum) is before


def test_a_second_ctrl_c_while_stopping_interrupts():
    with StopFlag() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.reason == "SIGINT"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)


def notify_socket(tmp_path: Path, *, abstract: bool) -> tuple[socket.socket, str]:
    """A bound unix datagram socket and its $NOTIFY_SOCKET spelling."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"latentstage-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        return sock, "@" + name
    sock.bind(str(tmp_path / "notify"))
    return sock, str(tmp_path / "notify")


def received(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_reaches_a_unix_datagram_socket(tmp_path, abstract):
    sock, address = notify_socket(tmp_path, abstract=abstract)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    lifeline = Lifeline(env)
    assert lifeline.systemd.watchdog_s == 2.0
    lifeline.alive()
    lifeline.alive()
    lifeline.status("open | frame p50 4 ms")
    lifeline.stopping()
    assert received(sock) == [
        "READY=1\nSTATUS=playing",
        "WATCHDOG=1",
        "STATUS=open | frame p50 4 ms",
        "STOPPING=1",
    ]
    sock.close()


def test_no_watchdog_for_another_process_and_no_socket_is_quiet(tmp_path):
    sock, address = notify_socket(tmp_path, abstract=False)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    lifeline = Lifeline(env)
    assert lifeline.systemd.watchdog_s is None
    lifeline.alive()
    lifeline.alive()
    assert received(sock) == ["READY=1\nSTATUS=playing"]
    sock.close()
    quiet = Lifeline({})
    assert not quiet.systemd.enabled and not quiet.heartbeat.enabled
    quiet.alive()
    quiet.stopping()
    # The socket went away: the show carries on.
    gone = Lifeline({"NOTIFY_SOCKET": address})
    assert gone.systemd.send("READY=1") is False


def test_heartbeat_bytes_arrive_and_a_closed_pipe_means_the_supervisor_is_gone():
    read_fd, write_fd = os.pipe()
    beat = Heartbeat({HEARTBEAT_ENV: str(write_fd)})
    assert beat.enabled
    beat.beat()
    beat.beat()
    assert os.read(read_fd, 16) == b".."
    os.close(read_fd)
    beat.beat()
    assert beat.supervisor_gone
    beat.close()


def test_a_full_pipe_loses_beats_without_blocking():
    read_fd, write_fd = os.pipe()
    beat = Heartbeat({HEARTBEAT_ENV: str(write_fd)})
    start = time.perf_counter()
    for _ in range(100_000):  # more than a pipe holds
        beat.beat()
    assert time.perf_counter() - start < 5.0 and not beat.supervisor_gone
    beat.close()
    os.close(read_fd)


def test_backoff_doubles_up_to_a_minute_and_resets_after_a_good_run():
    waits, wait = [], 0.0
    for _ in range(9):
        wait = next_backoff_s(wait, ran_well=False)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 32, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert next_backoff_s(wait, ran_well=True) == 0.0
    assert next_backoff_s(0.0, ran_well=False) == 1.0
    show = Path("/gallery/shows/installation.toml")
    assert default_crash_log(show, None) == Path("/gallery/shows/installation-crashes.log")
    assert default_crash_log(show, Path("/var/log/ls/show.log")) == Path(
        "/var/log/ls/installation-crashes.log"
    )


def report(**changes) -> dict:
    base = {
        "show": "tiny",
        "published_s": time.monotonic(),
        "uptime_s": 60.0,
        "fps": 30.0,
        "work_ms": (4.0, 5.0, 6.0, 30.0),
        "generator": {"fps": 12.0, "errors": 0},
        "generator_quiet_s": 0.1,
    }
    base.update(changes)
    return base


def test_judging_a_report():
    now = time.monotonic()
    served = serve(report(published_s=now - 0.2), now)
    assert served["healthy"] and served["problems_now"] == [] and served["last_frame_age_s"] < 1
    assert served["frame_p50_ms"] == 5.5 and 29 < served["frame_p99_ms"] < 30
    assert served["memory_rss_mb"] > 10 and "work_ms" not in served
    stale = serve(report(published_s=now - STALE_S - 1), now)
    assert not stale["healthy"] and "no frame presented for" in stale["problems_now"][0]
    failing = serve(report(generator_quiet_s=30.0, generator={"errors": 900}), now)
    assert not failing["healthy"]
    assert failing["problems_now"] == ["the generator delivered no frame for 30 s (900 errors)"]
    # Resting through closed hours or starting up: not judged on the generator.
    assert serve(report(generator_quiet_s=None), now)["healthy"]


def test_the_endpoint_answers_200_healthy_and_503_not():
    server = HealthServer(HealthConfig(port=0))  # the system picks a free port
    config = HealthConfig(port=server.port)
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert info.value.code == 503  # nothing presented yet
        server.publish(report())
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            body = json.loads(r.read())
        assert body["healthy"] and body["fps"] == 30.0 and "published_s" not in body
        server.publish(report(published_s=time.monotonic() - 60))
        served = fetch(config)
        assert served["healthy"] is False and served["last_frame_age_s"] >= 60
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nothing", timeout=5)
        assert info.value.code == 404
    finally:
        server.close()
    with pytest.raises(ShowError, match=r"no answer from http://127\.0\.0\.1:\d+/"):
        fetch(config, timeout_s=2)
