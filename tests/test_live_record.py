"""Recording the live output (runtime/render/live_record.py): requests on the bus,
the wall-time timeline, drops under load, the sound, and live shows under Xvfb
recorded, steered over OSC and the keyboard, and killed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

import xdisplay
from helpers import copy_show, probe_frames
from runtime.cli import main
from runtime.render.live_record import (
    LiveRecorder,
    Recording,
    default_path,
    ffmpeg_command,
    free_path,
    record_requests,
)
from runtime.render.recorder import ffmpeg_exe
from runtime.signals import Event
from xdisplay import run_show

display = xdisplay.display  # the Xvfb fixture

AMEN = Path("/usr/share/sonic-pi/samples/loop_amen_full.flac")


def decode_gray(path: Path, size_px: tuple[int, int]) -> np.ndarray:
    """Every frame's mean level, in order (the whole file decoded strictly)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(path), "-map", "0:v:0",
         "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=True,
    )  # fmt: skip
    width, height = size_px
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(-1, height, width)
    return frames.reshape(len(frames), -1).mean(axis=1)


def decode_sound(path: Path, rate_hz: int) -> np.ndarray:
    """The file's sound as mono float32 at rate_hz."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
         "-ar", str(rate_hz), "-f", "f32le", "pipe:1"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(proc.stdout, np.float32)


def gray_frame(level: int, size_px: tuple[int, int]) -> bytes:
    width, height = size_px
    return np.full((height, width, 4), level, np.uint8).tobytes()


# Requests and names


def test_record_requests_come_from_key_r_and_osc():
    events = [
        Event("key:r", 1.0, 0.0),
        Event("key:r", 0.0, 0.1),  # the release is no request
        Event("osc:/record", 1.0, 0.2),
        Event("osc:/fader/1", 0.3, 0.2),
        Event("osc:/record", 0.0, 0.3),
        Event("osc:/record/toggle", 1.0, 0.4),
    ]
    assert record_requests(events) == [None, True, False, None]


def test_a_recording_never_overwrites_and_picks_its_container_by_suffix(tmp_path):
    (tmp_path / "set.mkv").touch()
    (tmp_path / "set-2.mkv").touch()
    assert free_path(tmp_path / "set.mkv") == tmp_path / "set-3.mkv"
    from datetime import datetime

    named = default_path(tmp_path, "my show/2", datetime(2026, 12, 1, 21, 5, 9))
    assert named == tmp_path / "recordings" / "my-show-2-20261201-210509.mkv"
    mkv = ffmpeg_command("ffmpeg", Path("a.mkv"), (64, 48), 30.0, None)
    assert mkv[mkv.index("-f", mkv.index("pipe:0")) + 1] == "matroska"
    mp4 = ffmpeg_command("ffmpeg", Path("a.mp4"), (64, 48), 30.0, None)
    assert "+frag_keyframe+empty_moov+default_base_moof" in mp4


def test_the_command_line_teaches_and_checks_record(tmp_path, capsys):
    show = copy_show(tmp_path)
    with pytest.raises(SystemExit):
        main([str(show), "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "--record FILE" in helptext and "OSC /record 1 (0 stops" in helptext
    assert "--ndi NAME" in helptext
    assert main([str(show), "--record", str(tmp_path / "set.avi")]) == 1
    assert "expected a file ending in .mkv" in capsys.readouterr().err
    assert main([str(show), "--record", str(tmp_path / "nowhere" / "set.mkv")]) == 1
    assert "the folder" in capsys.readouterr().err
    out = tmp_path / "out.mp4"
    assert main([str(show), "--headless", "--out", str(out), "--record", "a.mkv"]) == 1
    assert "--record records live play" in capsys.readouterr().err
    assert main([str(show), "--headless", "--out", str(out), "--ndi", "stage"]) == 1
    assert "--ndi sends live play" in capsys.readouterr().err


# The writer: timeline, drops, sound


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_timeline_is_wall_time_late_frames_repeat(tmp_path, suffix):
    size = (64, 48)
    path = tmp_path / f"timeline{suffix}"
    rec = Recording(path, size, 10.0, 5.0)
    # Show times from t0 = 5.0 at 10 fps: slots 0, 1, (two in slot 2), a gap to 6.
    for t_s, level in ((5.0, 10), (5.1, 40), (5.2, 70), (5.22, 200), (5.6, 100)):
        assert rec.offer(gray_frame(level, size), t_s)
    rec.finish(6.0)
    assert rec.join(30) and rec.error is None
    levels = np.round(decode_gray(path, size)).astype(int)
    # 1 s at 10 fps: the second frame in slot 2 is skipped, slots 3..5 repeat slot 2's,
    # slots 7..9 repeat the last until the end.
    expected = [10, 40, 70, 70, 70, 70, 100, 100, 100, 100]
    assert np.abs(levels - expected).max() <= 2, levels
    assert rec.written == 10 and rec.dropped == 0 and rec.offered == 5


def test_a_full_queue_drops_and_counts_and_never_waits(tmp_path):
    size = (320, 240)
    path = tmp_path / "burst.mkv"
    rec = Recording(path, size, 30.0, 0.0, queue_frames=2)
    frame = gray_frame(128, size)
    begin = time.perf_counter()
    results = [rec.offer(frame, i / 30.0) for i in range(60)]
    offer_s = time.perf_counter() - begin
    rec.finish(2.0)
    # A put that waited for the encoder would drop nothing; loose bound for a busy CI.
    assert rec.dropped == results.count(False) and rec.dropped > 30
    assert offer_s < 0.25, f"60 offers took {offer_s * 1000:.0f} ms"
    assert rec.offered == 60
    assert rec.join(30) and rec.error is None
    # Dropped frames leave slots the frames before them fill: the length is kept.
    assert probe_frames(path) == (60, size)


def test_the_sound_starts_with_the_picture_and_a_dropped_block_leaves_silence(tmp_path):
    rate = 8000
    path = tmp_path / "sound.mkv"
    rec = Recording(path, (64, 48), 25.0, 1.0, sample_rate_hz=float(rate))
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(rate * 3) / rate)).astype(np.float32)
    block = 400
    for i in range(25):
        rec.offer(gray_frame(50, (64, 48)), 1.0 + i / 25.0)
    # The first block arrives 0.25 s after the recording began; block 6 is lost.
    for i in range(0, 35):
        samples = tone[i * block : (i + 1) * block]
        arrived_s = 1.25 + (i + 1) * block / rate
        if i == 6:
            rec._gap += block  # what a full queue does
            continue
        rec.hear(samples.copy(), float(rate), arrived_s)
    rec.finish(3.0)
    assert rec.join(30) and rec.error is None
    sound = decode_sound(path, rate)
    assert abs(len(sound) / rate - 2.0) < 1024 / rate  # the picture's 2 s (AAC frames)
    onset = np.argmax(np.abs(sound) > 0.1) / rate
    assert abs(onset - 0.25) < 0.01
    # The tone where it belongs (AAC keeps the waveform), silence for block 6.
    start = round(0.25 * rate)
    got = sound[start : start + 6 * block]
    assert np.corrcoef(got, tone[: 6 * block])[0, 1] > 0.98
    hole = sound[start + 6 * block + 50 : start + 7 * block - 50]
    assert np.abs(hole).max() < 0.05
    after = sound[start + 7 * block : start + 20 * block]
    assert np.corrcoef(after, tone[7 * block : 20 * block])[0, 1] > 0.98


def test_the_recorder_follows_requests_and_shows_its_state(tmp_path):
    size = (64, 48)
    recorder = LiveRecorder(
        show_name="night set", folder=tmp_path, size_px=size, fps=30.0, origin_s=0.0
    )
    assert recorder.hud_lines() == [] and recorder.state.active is False
    recorder.update([Event("osc:/record", 1.0, 0.0)], 1.0)
    assert recorder.active
    for i in range(31):
        recorder.frame(gray_frame(i, size), 1.0 + i / 30.0)
    state = recorder.state
    # 31 frames at once into a queue of 8: some may be dropped, and the HUD says so.
    assert state.active and state.elapsed_s == pytest.approx(1.0)
    assert state.dropped == recorder.recording.dropped
    assert state.path.parent == tmp_path / "recordings" and state.path.suffix == ".mkv"
    assert state.path.name.startswith("night-set-")
    dropped = f"  {state.dropped} dropped" if state.dropped else ""
    assert recorder.hud_lines() == [f"REC 00:00:01  {state.path.name}{dropped}   r: stop"]
    recorder.update([Event("key:r", 1.0, 0.0), Event("key:r", 0.0, 0.0)], 2.0)
    assert not recorder.active and recorder.state.path == state.path
    assert recorder.hud_lines()[0].startswith(f"rec stopped: {state.path.name}  00:00:01  ")
    recorder.close(2.0)
    assert probe_frames(state.path) == (30, size)


def test_a_start_waits_for_the_sound_then_records_without_it(tmp_path):
    def recorder() -> LiveRecorder:
        return LiveRecorder(
            show_name="s", folder=tmp_path, size_px=(64, 48), fps=30.0, origin_s=0.0, sound=True
        )

    waiting = recorder()
    waiting.update([Event("key:r", 1.0, 0.0)], 0.0)
    assert not waiting.active  # no block heard yet: its rate is unknown
    waiting.update([], 1.0)
    assert not waiting.active
    waiting.update([], 2.1)
    assert waiting.active and waiting.recording.sample_rate_hz is None
    waiting.close(2.2)
    heard = recorder()
    heard.hear(np.zeros(512, np.float32), 22050.0)
    heard.update([Event("key:r", 1.0, 0.0)], 0.0)
    assert heard.active and heard.recording.sample_rate_hz == 22050.0
    assert heard.hud_lines()[0].endswith("with sound   r: stop")
    heard.close(0.5)


def test_when_the_sound_stops_the_picture_still_reaches_the_file(tmp_path):
    # A sound file that ended, a device unplugged: ffmpeg must not hold the picture
    # back waiting for sound, or a kill would lose it.
    size = (64, 48)
    path = tmp_path / "silent.mkv"
    rec = Recording(path, size, 30.0, 0.0, sample_rate_hz=8000.0)
    begin = time.perf_counter()
    for i in range(75):  # 2.5 s in real time, no sound block at all
        rec.offer(gray_frame(100, size), i / 30.0)
        time.sleep(max(0.0, (i + 1) / 30.0 - (time.perf_counter() - begin)))
    frames_so_far = decode_gray(path, size)  # the file as a kill would leave it
    rec.finish(2.5)
    assert rec.join(30) and rec.error is None
    # Held back for the sound, the file would not even have its header yet (tried);
    # about 50 are on a quiet machine.
    assert len(frames_so_far) >= 15, len(frames_so_far)
    sound = decode_sound(path, 8000)
    # AAC pads the end to whole frames of 1024 samples.
    assert abs(len(sound) / 8000 - 2.5) < 1024 / 8000 and np.abs(sound).max() < 0.01


def test_a_failed_start_is_shown_and_the_recorder_carries_on(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the recordings folder should be")
    recorder = LiveRecorder(show_name="s", folder=blocked, size_px=(64, 48), fps=30.0, origin_s=0.0)
    recorder.update([Event("key:r", 1.0, 0.0)], 0.0)
    assert recorder.recording is None
    assert recorder.hud_lines()[0].startswith("rec failed: cannot record to")
    assert recorder.state.active is False


# Live shows under Xvfb


class Output:
    """A process's merged output, read on a thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, since: int = 0, timeout_s: float = 90.0) -> re.Match:
        """The first line from line `since` on that matches."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines[since:]:
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None and not self.proc.stdout.readable():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.text()[-4000:]}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(x) for x in text]
    return found


@pytest.mark.gl
@pytest.mark.slow
def test_a_killed_show_leaves_a_playable_recording(display, tmp_path):
    show = copy_show(tmp_path)
    out = tmp_path / "killed.mkv"
    proc = run_show([str(show), "--record", str(out), "--no-hud"], display)
    output = Output(proc)
    try:
        output.wait_for(r"recording to .*killed\.mkv")
        time.sleep(2.5)
        # Kill the encoder too: the file must survive without its trailer.
        encoders = children(proc.pid)
        assert encoders, "no ffmpeg child"
        for pid in [*encoders, proc.pid]:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    frames, size = probe_frames(out)
    assert size == (96, 64)
    assert frames >= 15, output.text()[-3000:]
    levels = decode_gray(out, size)  # -xerror: a broken packet fails here
    assert len(levels) == frames


@pytest.mark.gl
@pytest.mark.slow
def test_osc_and_the_r_key_start_and_stop_recordings_of_the_played_length(display, tmp_path):
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is not installed")
    show = copy_show(tmp_path)
    # A controller listening: its record button follows every start and stop.
    controller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    controller.bind(("127.0.0.1", 0))
    controller.settimeout(0.2)
    heard: list[int] = []

    def listen() -> None:
        while controller.fileno() != -1:
            try:
                message = OscMessage(controller.recv(65535))
            except (TimeoutError, OSError):
                continue
            if message.address == "/ls/record":
                heard.append(int(message.params[0]))

    threading.Thread(target=listen, daemon=True).start()
    with show.open("a", encoding="utf-8") as f:
        f.write(f'\n[osc_out]\nhost = "127.0.0.1"\nport = {controller.getsockname()[1]}\n')
    first = tmp_path / "set.mkv"
    seconds = 9.0
    proc = run_show([str(show), "--record", str(first), "--seconds", str(seconds)], display)
    output = Output(proc)
    try:
        port = int(output.wait_for(r"OSC listening on 127\.0\.0\.1:(\d+)").group(1))
        output.wait_for(r"recording to .*set\.mkv")
        client = SimpleUDPClient("127.0.0.1", port)
        time.sleep(1.5)
        client.send_message("/record", 0)
        output.wait_for(r"recording stopped: .*set\.mkv")
        client.send_message("/record", 1)
        sent_at = time.monotonic()
        second = Path(output.wait_for(r"recording to (\S+recordings/tiny-\d+-\d+\.mkv)").group(1))
        time.sleep(1.5)
        client.send_message("/record/toggle", [])
        sent_gap_s = time.monotonic() - sent_at
        output.wait_for(r"recording stopped: .*tiny-")
        # The r key: a key press through the X server into the window.
        mark = len(output.lines)
        env = {**os.environ, "DISPLAY": display}
        subprocess.run(
            ["xdotool", "search", "--name", "latentstage", "windowfocus", "--sync", "key", "r"],
            env=env, check=True, timeout=30,
        )  # fmt: skip
        third = Path(output.wait_for(r"recording to (\S+recordings/tiny-\S+\.mkv)", mark).group(1))
        assert third != second
        assert proc.wait(timeout=60) == 0, output.text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        time.sleep(0.3)
        controller.close()
    # Three recordings, each begun and ended: the controller heard every change.
    assert heard == [1, 0, 1, 0, 1, 0], heard
    text = output.text()
    played_s = {
        Path(path): float(length)
        for path, length in re.findall(r"recording stopped: (\S+) after ([\d.]+) s", text)
    }
    assert set(played_s) == {first, second, third}
    assert 1.0 < played_s[first] < 4.0
    # As long as the controller held it on: the messages reach a frame within a frame
    # or two of being sent, at either end.
    assert abs(played_s[second] - sent_gap_s) < 0.5, (played_s[second], sent_gap_s)
    for path, length_s in played_s.items():
        frames, size = probe_frames(path)
        assert size == (96, 64)
        # Within a frame or two of the time it was played, however the loop kept up.
        assert abs(frames - length_s * 30.0) <= 2, (path, frames, length_s)
    assert "dropped by the encoder's queue" in text


@pytest.mark.gl
@pytest.mark.slow
def test_the_live_sound_is_recorded_alongside(display, tmp_path):
    if not AMEN.exists():
        pytest.skip(f"{AMEN} is missing (install.sh --dev installs sonic-pi-samples)")
    show = copy_show(tmp_path, "music_tiny")
    out = tmp_path / "music.mp4"
    proc = run_show([str(show), "--record", str(out), "--seconds", "4"], display)
    output = Output(proc)
    try:
        assert proc.wait(timeout=120) == 0, output.text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = output.text()
    rate = int(re.search(r"recording to .*music\.mp4 .*sound at (\d+) Hz", text).group(1))
    length_s = float(re.search(r"recording stopped: .* after ([\d.]+) s", text).group(1))
    source, source_rate = soundfile.read(str(AMEN), dtype="float32", always_2d=True)
    source = source.mean(axis=1)
    assert rate == source_rate
    sound = decode_sound(out, rate)
    assert abs(len(sound) / rate - length_s) < 0.1
    # The recording starts a little into the file (the first block's wait): find
    # where, and the waveform must match the file there.
    window = sound[rate // 2 : rate // 2 + rate]
    spectrum = np.fft.rfft(source[: 3 * rate], 4 * rate)
    correlation = np.fft.irfft(spectrum * np.conj(np.fft.rfft(window, 4 * rate)), 4 * rate)
    lag = int(np.argmax(correlation[: 2 * rate]))
    match = source[lag : lag + len(window)]
    assert np.corrcoef(match, window)[0, 1] > 0.9
    offset_s = lag / rate - 0.5  # where the recording's sound starts in the file
    # Each block is placed by when it reached the analysis, a block or so after the
    # sound card (here the file's pacing) had it: the sound may lag by that.
    assert -0.1 < offset_s < 0.5, offset_s
    frames, _ = probe_frames(out)
    assert abs(frames - length_s * 30.0) <= 2
