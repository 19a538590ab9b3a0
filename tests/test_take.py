"""Capture a performance and render it again: a live show under Xvfb steered over
real UDP OSC and a JACK MIDI port is captured into a take; rendered from the take at
the same size it gives the same mapped values and the same pixels on every frame, at
twice the size frames twice the size, and an edited mapping is caught; a take cut
short by SIGKILL renders through the CLI up to its last complete frame with its
sound; the torch generator thread renders a take the same twice; key c starts and
stops takes; broken lines are named by file and line."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from midi_ports import jack_server
from PIL import Image
from pythonosc.udp_client import SimpleUDPClient

import xdisplay
from helpers import copy_show, probe_frames
from runtime.capture import CaptureSwitch, TakeCapture, fresh_name
from runtime.cli import main
from runtime.errors import ConfigError
from runtime.show import load_show
from runtime.signals import SignalBus
from runtime.take import EVENTS_FILE, read_take
from runtime.take_render import TakeFeed, render_take, resize_output
from xdisplay import run_show

display = xdisplay.display  # the Xvfb fixture

MAPPING = """\
[set]
"shader.fit.mode" = 1
"shader.trails.decay" = 0.5

[[map]]
source = "osc:/level"
target = "shader.grade.brightness"
out = [0.0, 2.0]

[[map]]
source = "midi:cc/74"
target = "gen.zoom"
out = [0.8, 1.2]
smooth_s = 0.2

[[map]]
source = "midi:note/48"
target = "latent.hop"
trigger = 0.5

[[map]]
source = "lfo:mid"
target = "shader.grade.saturation"
"""


def write_show(folder: Path, inputs: str) -> Path:
    """A 64x48 cppn drawn in GL (frame i from frame i's values), 96x64 output."""
    (folder / "take_mapping.toml").write_text(MAPPING)
    show = folder / "take.toml"
    show.write_text(
        'mappings = ["take_mapping.toml"]\n[show]\nname = "take"\n'
        '[generator]\nkind = "cppn"\nseed = 5\nsize = [64, 48]\ndevice = "gl"\n'
        "[output]\nsize = [96, 64]\nfps = 30\n"
        f"{inputs}\n"
        '[[effects]]\nshader = "fit"\n[[effects]]\nshader = "feedback"\nname = "trails"\n'
        '[[effects]]\nshader = "grade"\n'
    )
    return show


class Output:
    """A process's merged output, read on demand up to a pattern."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.text = ""

    def wait_for(self, pattern: str, timeout_s: float = 90.0) -> re.Match:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            self.text += line
        raise AssertionError(f"no {pattern!r} in:\n{self.text}")

    def rest(self) -> str:
        self.text += self.proc.stdout.read()
        return self.text


@pytest.mark.gl
@pytest.mark.slow
def test_a_live_take_over_osc_and_jack_midi_renders_frame_exact(display, tmp_path, caplog):
    with jack_server() as server:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        port_name = f"{server}-knobs"
        midi_out = backend.open_output(port_name, virtual=True)
        inputs = f'[inputs.osc]\nport = 0\n[inputs.midi]\nports = ["{port_name}"]\napi = "jack"\n'
        show = write_show(tmp_path, inputs)
        take = tmp_path / "set.take"
        recording = tmp_path / "set.mkv"  # recorded too: one read-back serves both
        proc = run_show(
            [str(show), "--capture", str(take), "--capture-frames", "--record", str(recording)],
            display,
        )
        out = Output(proc)
        try:
            port = int(out.wait_for(r"OSC listening on 127\.0\.0\.1:(\d+)")[1])
            out.wait_for(r"midi: opened")
            osc = SimpleUDPClient("127.0.0.1", port)
            sent_levels = []
            for step in range(40):  # a fader and a knob moved for 1.2 s, a pad hit twice
                level = step / 39
                osc.send_message("/level", level)
                sent_levels.append(level)
                midi_out.send(mido.Message("control_change", control=74, value=step * 3))
                if step in (10, 30):
                    midi_out.send(mido.Message("note_on", note=48, velocity=100))
                if step in (12, 32):
                    midi_out.send(mido.Message("note_off", note=48))
                time.sleep(0.03)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, out.rest()
        finally:
            if proc.poll() is None:
                proc.kill()
            midi_out.close()
    assert "capturing the performance into" in out.rest()
    captured = read_take(take)
    events = [e for f in captured.frames for e in f.events]
    assert [v for n, v in events if n == "osc:/level"] == pytest.approx(sent_levels)
    assert [v for n, v in events if n == "midi:cc/74"] == pytest.approx(
        [step * 3 / 127 for step in range(40)]
    )
    assert [v for n, v in events if n == "midi:note/48"] == pytest.approx([100 / 127, 0.0] * 2)
    n = len(captured.frames)
    assert n > 40 and [f.frame for f in captured.frames] == list(range(n))
    assert all(f.pixels_digest for f in captured.frames)
    recorded, size = probe_frames(recording)  # wall time at the show's fps
    assert size == (96, 64) and recorded >= n // 2, (recorded, n)

    # The same size: the same mapped values and the same pixels on every frame.
    same = render_take(load_show(show), take, out=tmp_path / "same", progress=False)
    assert (same.frames, same.written) == (n, n)
    assert (same.values_checked, same.values_differ) == (n, [])
    assert (same.pixels_checked, same.pixels_differ) == (n, [])
    frames = sorted((tmp_path / "same").glob("frame_*.png"))
    assert len(frames) == n
    assert Image.open(frames[0]).size == (96, 64)
    # The fader reached the picture: at 0 it is darker than at the end, at 1.
    down = next(f.frame for f in captured.frames if ("osc:/level", 0.0) in f.events)
    dark, bright = (np.asarray(Image.open(frames[i]), dtype=float).mean() for i in (down, -1))
    assert dark + 20 < bright

    # Twice the size: frames twice the size, the mapped values still the live ones.
    big = resize_output(load_show(show), (192, 128), None)
    assert big.output.canvas_px == (192, 128)
    twice = render_take(big, take, out=tmp_path / "twice", progress=False)
    assert (twice.values_checked, twice.values_differ, twice.pixels_checked) == (n, [], 0)
    frames = sorted((tmp_path / "twice").glob("frame_*.png"))
    assert len(frames) == n and Image.open(frames[-1]).size == (192, 128)

    # A mapping edited since: named in a warning, and the check sees every frame differ.
    mapping = tmp_path / "take_mapping.toml"
    mapping.write_text(
        MAPPING.replace('"shader.trails.decay" = 0.5', '"shader.trails.decay" = 0.6')
    )
    with caplog.at_level(logging.WARNING):
        edited = render_take(
            load_show(show), take, out=tmp_path / "edited", frames=10, progress=False
        )
    assert edited.values_differ == list(range(10)) and edited.pixels_differ
    assert f"{mapping} changed since the capture" in caplog.text
    assert (
        "mapped values differ from the live show's on 10 frames, first 0, 1, 2, 3, 4" in caplog.text
    )


@pytest.mark.gl
@pytest.mark.slow
def test_a_take_killed_by_sigkill_renders_to_its_last_frame_with_its_sound(display, tmp_path):
    inputs = '[inputs.audio]\nfile = "/usr/share/sonic-pi/samples/loop_amen_full.flac"\n'
    if not Path("/usr/share/sonic-pi/samples/loop_amen_full.flac").exists():
        pytest.skip("sonic-pi-samples not installed (install.sh --dev)")
    show = write_show(tmp_path, inputs)
    take = tmp_path / "killed.take"
    proc = run_show([str(show), "--capture", str(take)], display)
    out = Output(proc)
    try:
        out.wait_for("capturing the performance into")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (take / "audio.f32").exists() and (take / EVENTS_FILE).stat().st_size > 6000:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        proc.kill()  # SIGKILL: nothing is closed, no header patched
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = take / EVENTS_FILE
    text = events.read_text()
    # And as if the kill had come in the middle of a line.
    events.write_text(text + '{"k":"f","i":99999,"t":1')
    captured = read_take(take)
    assert not captured.complete
    lines = [json.loads(line) for line in text.splitlines()[1:]]
    frames = [row for row in lines if row["k"] == "f"]
    assert len(captured.frames) == len(frames) > 10
    assert captured.audio_rate_hz and len(captured.audio()) > captured.audio_rate_hz // 2
    audio_events = [n for f in captured.frames for n, _ in f.events if n.startswith("audio:")]
    assert audio_events, "the audio features were not captured"
    video = tmp_path / "killed.mp4"
    render = run_show([str(show), "--take", str(take), "--headless", "--out", str(video)], None)
    text, _ = render.communicate(timeout=300)
    assert render.returncode == 0, text
    assert "the last line is incomplete" in text
    n = len(frames)
    found = re.search(
        rf"rendered {n} live frames \((\d+) written\); mapped values as live on {n}/{n}", text
    )
    assert found, text
    assert abs(int(found[1]) - round((frames[-1]["t"] - frames[0]["t"]) * 30) - 1) <= 1
    streams = _streams(video)
    assert streams == ["video", "audio"] or streams == ["audio", "video"], streams
    # A preview of the first frames, at another size.
    preview = tmp_path / "preview"
    render = run_show(
        [
            str(show),
            "--take",
            str(take),
            "--headless",
            "--out",
            str(preview),
            "--frames",
            "5",
            "--size",
            "48x32",
        ],
        None,
    )
    text, _ = render.communicate(timeout=300)
    assert render.returncode == 0 and "rendered 5 live frames (5 written)" in text, text
    shots = sorted(preview.glob("*.png"))
    assert len(shots) == 5 and Image.open(shots[0]).size == (48, 32)


def _streams(path: Path) -> list[str]:
    import imageio_ffmpeg

    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
    ).stderr
    return [m.lower() for m in re.findall(r"Stream #\S+.*?: (Video|Audio)", info)]


def test_take_options_are_checked(tmp_path, capsys):
    show = str(copy_show(tmp_path))
    assert main([show, "--take", "x.take"]) == 1
    assert "--take renders offline: add --headless and --out" in capsys.readouterr().err
    assert main([show, "--capture", "x.take", "--headless", "--out", "x.mp4"]) == 1
    assert "--capture captures a live performance" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([show, "--size", "12"])
    assert "expected WIDTHxHEIGHT in pixels, e.g. 1280x720, got '12'" in capsys.readouterr().err
    assert main([show, "--take", str(tmp_path), "--headless", "--out", "x.mp4"]) == 1
    assert f"{tmp_path}: not a take (no take.jsonl in it)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([show, "--help"])
    taught = " ".join(capsys.readouterr().out.split())
    for flag in ("--capture TAKE", "--capture-frames", "--take TAKE", "--size WxH", "--canvas WxH"):
        assert flag in taught
    assert "key c stops and starts takes" in taught


def test_a_broken_line_is_named_by_file_and_line(tmp_path):
    take = tmp_path / "bad.take"
    capture = TakeCapture(take, lambda: {"show": "x"}, check_frames=False)
    bus = SignalBus()
    for frame in range(3):
        bus.set("osc:/a", frame / 2)
        capture.frame(frame, frame / 30, 1 / 30, bus.snapshot(), [], {"gen.zoom": 1.0})
    capture.close()
    lines = (take / EVENTS_FILE).read_text().splitlines()
    lines[2] = lines[2][:-5]  # a broken second frame
    (take / EVENTS_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{take / EVENTS_FILE}:3: not JSON")):
        read_take(take)
    lines[2] = '{"k":"f","i":1,"t":"soon","dt":0.03}'
    (take / EVENTS_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"bad\.take/take\.jsonl:3: a frame needs 'i'"):
        read_take(take)
    with pytest.raises(ConfigError, match="not a take"):
        read_take(tmp_path)


def test_the_take_feed_gives_the_bus_what_the_live_mapping_saw(tmp_path):
    live = SignalBus()
    take_path = tmp_path / "feed.take"
    capture = TakeCapture(take_path, dict, check_frames=False)
    live.set("osc:/held", 0.25)  # before the capture's first frame, seen as an event
    seen = []
    for frame, writes in enumerate([[("midi:note/1", 1.0), ("midi:note/1", 0.0)], [], [("a", 2)]]):
        for name, value in writes:
            live.set(name, value)
        live.texts.put("osc:/prompt", b"\x00blob" if frame == 1 else "a red city")
        snapshot, texts = live.snapshot(), live.texts.take()
        seen.append((dict(snapshot.values), [(e.name, e.value) for e in snapshot.events], texts))
        capture.frame(frame, frame * 0.03, 0.03, snapshot, texts, {"x": float(frame)})
    capture.close()
    captured = read_take(take_path)
    assert captured.complete and captured.audio() is None
    feed, bus = TakeFeed(captured.frames), SignalBus()
    for values, events, texts in seen:
        feed.update(bus, 0.0)
        snapshot = bus.snapshot()
        assert dict(snapshot.values) == values
        assert [(e.name, e.value) for e in snapshot.events] == events
        assert bus.texts.take() == texts


def test_a_take_started_mid_show_carries_the_values_already_held(tmp_path):
    live = SignalBus()
    live.set("osc:/fader", 0.7)
    live.snapshot()  # frames before the capture began
    capture = TakeCapture(tmp_path / "mid.take", dict, check_frames=False)
    live.set("osc:/other", 0.1)
    capture.frame(500, 16.6, 0.033, live.snapshot(), [], {})
    capture.close()
    record = read_take(tmp_path / "mid.take").frames[0]
    assert record.start_values == {"osc:/fader": 0.7}
    assert record.events == (("osc:/other", 0.1),)
    assert fresh_name(tmp_path / "mid.take") == tmp_path / "mid-2.take"
    again = TakeCapture(tmp_path / "mid.take", dict, check_frames=False)
    again.frame(501, 16.7, 0.033, live.snapshot(), [], {})
    again.close()
    assert "already holds a take" in again.error and again.dropped == 1
    assert re.fullmatch(
        r"capture 00:00:00 FAILED: .*mid\.take: already holds a take.*", again.status()
    )
    assert [f.frame for f in read_take(tmp_path / "mid.take").frames] == [500]


def test_key_c_starts_and_stops_takes_with_fresh_names(tmp_path):
    show = load_show(copy_show(tmp_path))
    switch = CaptureSwitch(show, (96, 64), None)
    bus = SignalBus()

    def frame(i, *writes):
        for name, value in writes:
            bus.set(name, value)
        switch.frame(i, i / 30, 1 / 30, bus.snapshot(), [], {"x": float(i)})

    frame(0)
    assert switch.take is None and switch.status() is None
    frame(1, ("key:c", 1.0))
    frame(2, ("key:c", 0.0))
    frame(3)
    first = switch.take.path
    assert first.parent == tmp_path / "takes" and re.fullmatch(
        r"tiny-\d{8}-\d{6}\.take", first.name
    )
    assert re.fullmatch(rf"capture 00:00:0\d {first.name}  3 frames", switch.status())
    frame(4, ("key:c", 1.0))  # stops: the writer finishes on its own
    assert switch.take is None
    frame(5, ("key:c", 0.0), ("key:c", 1.0))
    frame(6, ("key:c", 0.0), ("key:c", 1.0), ("key:c", 0.0), ("key:c", 1.0))  # off and on
    third = switch.take.path
    switch.close()
    assert third == first.with_name(f"{first.stem}-3.take")
    assert [f.frame for f in read_take(first).frames] == [1, 2, 3]
    assert read_take(first).frames[0].events == (("key:c", 1.0),)
    assert [f.frame for f in read_take(first.with_name(f"{first.stem}-2.take")).frames] == [5]
    assert [f.frame for f in read_take(third).frames] == [6]


@pytest.mark.gl
def test_a_take_renders_the_same_twice_with_a_torch_generator(tmp_path):
    """The tiny show's cppn runs on the generator thread (torch, device cpu)."""
    show = load_show(copy_show(tmp_path))
    take = tmp_path / "torch.take"
    capture = TakeCapture(take, dict, check_frames=False)
    bus = SignalBus()
    times = [0.0, 0.03, 0.09, 0.1, 0.13, 0.2, 0.23, 0.26]  # irregular, as live frames come
    for frame, t_s in enumerate(times):
        bus.set("osc:/level", 0.0 if frame < 4 else 1.0)
        capture.frame(frame, t_s, 0.033, bus.snapshot(), [], {})
    capture.close()
    renders = []
    for name in ("one", "two"):
        report = render_take(show, take, out=tmp_path / name, progress=False)
        assert (report.frames, report.written, report.pixels_checked) == (8, 8, 0)
        renders.append([np.asarray(Image.open(p)) for p in sorted((tmp_path / name).glob("*.png"))])
    assert all(np.array_equal(a, b) for a, b in zip(*renders, strict=True))
    dark, bright = renders[0][3].mean(), renders[0][-1].mean()
    assert dark + 20 < bright  # brightness 0 for frames 0..3, 2 after
    video = render_take(show, take, out=tmp_path / "irregular.mp4", progress=False)
    # Video frames at 30 fps over 0.26 s: 9 slots; frame 2 (0.09 s) and frame 3
    # (0.1 s) share the slot at 0.1 s (the later is kept), frames 1 and 4 fill two.
    assert video.written == round(0.26 * 30) + 1
