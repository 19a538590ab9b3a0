"""Controllers over OSC: every target at /ls/TARGET over real UDP, OSC out received
by a real socket (and by liblo's oscdump as an outside peer), rate-limited per
address, and a running show telling its controller about a scene recall."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

import xdisplay
from helpers import copy_show
from runtime import PROJECT_ROOT
from runtime.config import Table
from runtime.errors import ConfigError
from runtime.osc_out import OscOut, OscOutConfig, build_osc_out, clock_state, read_osc_out
from runtime.show import load_show
from xdisplay import run_show

display = xdisplay.display  # the Xvfb fixture


@pytest.fixture
def receiver():
    """A UDP socket on a free local port, as a controller would listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        yield sock


def received(sock, *, wait_s=0.3) -> list[tuple[str, list]]:
    """Every message that arrives within wait_s of the last one."""
    messages = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        message = OscMessage(data)
        messages.append((message.address, list(message.params)))
        deadline = time.monotonic() + wait_s
    return messages


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_osc_out_sends_on_change_at_most_max_hz_per_address(receiver):
    clock = Clock()
    out = OscOut(OscOutConfig("127.0.0.1", receiver.getsockname()[1], 10.0), clock=clock)
    try:
        out.update({"/ls/gen.zoom": 1.0, "/ls/scene": "intro", "/ls/beat": 4})
        out.update({"/ls/gen.zoom": 1.0, "/ls/scene": "intro", "/ls/beat": 4})  # no change
        clock.now += 0.02
        for zoom in (1.1, 1.2, 1.3):  # too soon: only the newest goes, when it may
            out.update({"/ls/gen.zoom": zoom})
        first = received(receiver)
        assert first == [("/ls/gen.zoom", [1.0]), ("/ls/scene", ["intro"]), ("/ls/beat", [4])]
        clock.now += 0.1
        out.update({})
        assert received(receiver) == [("/ls/gen.zoom", [pytest.approx(1.3)])]
        out.update({"/ls/x": float("nan"), "/ls/pair": (1, "a")})
        assert received(receiver) == [("/ls/pair", [1, "a"])]
        assert out.sent == 5 and out.status().endswith("5 sent")
    finally:
        out.close()


def test_osc_out_reaches_liblo_oscdump(tmp_path):
    if not shutil.which("oscdump"):
        pytest.skip("liblo-tools' oscdump is not installed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dump = subprocess.Popen(
        ["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = OscOut(OscOutConfig("127.0.0.1", port))
    stop = threading.Event()

    def keep_sending():  # until oscdump has bound its port and printed
        while not stop.is_set():
            out.send("/ls/scene", "drop")
            out.send("/ls/gen.warp", 1.5)
            stop.wait(0.1)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    killer = threading.Timer(10.0, dump.kill)  # a readline never hangs the suite
    killer.start()
    try:
        # oscdump prints a time tag, the address, the type tags and the values.
        lines = [dump.stdout.readline().strip().split(" ", 1)[-1] for _ in range(4)]
    finally:
        stop.set()
        sender.join()
        killer.cancel()
        out.close()
        dump.terminate()
        dump.wait(timeout=5)
    assert '/ls/scene s "drop"' in lines
    assert "/ls/gen.warp f 1.500000" in lines


def test_osc_out_config_is_strict(tmp_path):
    def read(data):
        return read_osc_out(Table(data, file=tmp_path / "s.toml", text="", name="osc_out"))

    assert read({"host": "10.0.0.2", "port": 9000}) == OscOutConfig("10.0.0.2", 9000, 30.0)
    with pytest.raises(ConfigError, match=r"'prot': unknown key .*did you mean 'port'"):
        read({"host": "10.0.0.2", "port": 9000, "prot": 1})
    with pytest.raises(ConfigError, match=r"expected 1\.\.65535"):
        read({"host": "10.0.0.2", "port": 0})
    with pytest.raises(ConfigError, match="missing required key 'host'"):
        read({"port": 9000})


def test_an_unknown_host_is_logged_and_the_show_plays_without(caplog):
    with caplog.at_level(logging.ERROR):
        assert build_osc_out(OscOutConfig("no-such-host.invalid", 9000)) is None
    assert "[osc_out] host 'no-such-host.invalid'" in caplog.text
    assert "plays without OSC out" in caplog.text


def test_a_host_that_refuses_is_logged_once_counted_and_recovers(caplog, receiver):
    # Broadcast without SO_BROADCAST: the kernel refuses every datagram at once.
    out = OscOut(OscOutConfig("255.255.255.255", 9000))
    try:
        with caplog.at_level(logging.ERROR):
            assert not out.send("/ls/scene", "a")
            assert not out.send("/ls/scene", "b")
            out.update({"/ls/beat": 1})
        assert out.failed == 3 and out.sent == 0
        assert len([r for r in caplog.records if "osc out to 255.255.255.255" in r.message]) == 1
        assert "3 failed (Permission denied)" in out.status()
        out.address = receiver.getsockname()  # the network comes back
        out.update({"/ls/beat": 1})  # not sent before: goes now
        assert received(receiver) == [("/ls/beat", [1])]
        assert out.status().endswith("3 failed (recovered)")
    finally:
        out.close()


def test_clock_signals_become_beat_bar_and_tempo():
    state = clock_state({"clock:beat": 12.75, "clock:bar": 3.1875, "clock:bpm": 128.004})
    assert state == {"/ls/beat": 12, "/ls/bar": 3, "/ls/bpm": 128.0}
    assert clock_state({}) == {}


def test_targets_osc_lists_every_address_with_range_and_default():
    out = subprocess.run(
        [sys.executable, "run_show.py", "targets", "tests/shows/tiny.toml", "--osc"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:4] == ["/ls/gen.zoom", "1", "[0.1,", "8]"] for line in lines)
    assert any(line.startswith("/ls/shader.grade.brightness ") for line in lines)
    assert all(line.startswith("/ls/") for line in lines)


def wait_until(step, condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        step()
        time.sleep(0.01)
    assert condition()


@pytest.mark.gl
def test_a_running_show_takes_ls_addresses_and_tells_its_controller(
    tmp_path, gl_ctx, receiver, caplog
):
    from runtime.player import Player

    show_path = copy_show(tmp_path)
    with show_path.open("a") as f:
        f.write(
            f'\n[osc_out]\nhost = "127.0.0.1"\nport = {receiver.getsockname()[1]}\nmax_hz = 1000\n'
            '\n[scenes]\n\n[scenes.drop]\nfade_s = 0.2\n"gen.warp" = 1.5\n'
            '"shader.grade.brightness" = 0.2\n'
        )
    player = Player(load_show(show_path), gl_ctx, offline=False)
    player.start()
    frame = 0
    values = {}

    def step():
        nonlocal frame, values
        values = player.map(frame, frame / 30, 1 / 30)
        player.osc_out.update(player.controller_state())
        frame += 1
        time.sleep(0.005)  # frames a few ms apart, as live (max_hz 1000: 1 ms per address)

    try:
        client = SimpleUDPClient("127.0.0.1", player.inputs[0].port)
        # A target without a mapping entry, clamped to its range.
        client.send_message("/ls/gen.detail", 100.0)
        wait_until(step, lambda: values.get("gen.detail") == 4.0)
        if shutil.which("oscsend"):  # liblo as an outside sender
            port = str(player.inputs[0].port)
            subprocess.run(["oscsend", "localhost", port, "/ls/gen.flow", "f", "1.25"], check=True)
            wait_until(step, lambda: values.get("gen.flow") == 1.25)
        with caplog.at_level(logging.WARNING):
            client.send_message("/ls/gen.wrap", 1.0)
            client.send_message("/ls/gen.wrap", 1.0)
            wait_until(step, lambda: player.osc_targets.unknown == 2)
        logged = [r.getMessage() for r in caplog.records if "/ls/gen.wrap" in r.getMessage()]
        assert len(logged) == 1 and "did you mean 'gen.warp'" in logged[0]
        assert "osc /ls/: 2 to unknown targets" in player.controller_lines()
        received(receiver, wait_s=0.05)  # what was sent before the recall
        # A recall over OSC: the controller hears the scene and the gliding values.
        client.send_message("/scene/drop", [])
        wait_until(step, lambda: player.scenes.active == "drop")
        for _ in range(8):  # 0.2 s at 30 fps, and one more
            step()
        assert values["gen.warp"] == pytest.approx(1.5)
        messages = received(receiver)
        assert ("/ls/scene", ["drop"]) in messages
        warps = [args[0] for address, args in messages if address == "/ls/gen.warp"]
        assert len(warps) >= 4 and warps == sorted(warps)
        assert warps[-1] == pytest.approx(1.5)
        # Another writer takes a target out of the scene's hands: no echo to the controller.
        client.send_message("/ls/gen.warp", 0.5)
        wait_until(step, lambda: values.get("gen.warp") == 0.5)
        step()
        assert not [m for m in received(receiver, wait_s=0.1) if m[0] == "/ls/gen.warp"]
        assert any(line.startswith("osc out 127.0.0.1:") for line in player.controller_lines())
    finally:
        player.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.gl
def test_live_under_xvfb_keys_and_osc_recall_and_save_scenes_and_the_controller_hears(
    tmp_path, receiver, display
):
    """The real `run_show.py` in a window: key 2 and OSC /scene/NAME recall, shift+1
    saves into the show file, and OSC out tells a controller socket each time."""
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed (install.sh --dev installs it)")
    show_path = copy_show(tmp_path)
    osc_port = free_udp_port()
    text = show_path.read_text().replace("port = 0", f"port = {osc_port}")
    show_path.write_text(
        text + f'\n[osc_out]\nhost = "127.0.0.1"\nport = {receiver.getsockname()[1]}\n'
        "\n[scenes]\nfade_s = 0.1\n\n# the first\n[scenes.first]\n"
        '"gen.warp" = 0.5\n\n[scenes.second]\n"gen.warp" = 1.5\n'
    )
    proc = run_show([str(show_path), "--seconds", "60"], display)
    env = {**os.environ, "DISPLAY": display}
    try:
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--name", "^latentstage: tiny$"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        wid = found.stdout.split()[0]

        def until_heard(act, message, timeout_s=30.0):
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                act()
                if message in received(receiver, wait_s=0.3):
                    return
            pytest.fail(f"the controller never heard {message}")

        key = ["xdotool", "key", "--window", wid]
        until_heard(lambda: subprocess.run([*key, "2"], env=env), ("/ls/scene", ["second"]))
        client = SimpleUDPClient("127.0.0.1", osc_port)
        until_heard(lambda: client.send_message("/scene/first", []), ("/ls/scene", ["first"]))
        until_heard(lambda: subprocess.run([*key, "2"], env=env), ("/ls/gen.warp", [1.5]))
        subprocess.run([*key, "shift+1"], env=env, check=True)
        until_heard(lambda: None, ("/ls/scene", ["first"]))  # shift+1 saved into first
        subprocess.run([*key, "q"], env=env, check=True)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "scene second" in out and "scene first saved" in out
    saved = tomllib.loads(show_path.read_text())["scenes"]["first"]
    assert saved["gen.warp"] == pytest.approx(1.5)
    assert "# the first\n[scenes.first]\n" in show_path.read_text()
