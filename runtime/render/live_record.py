"""Record the live output: the picture the audience sees (without the HUD) and the
show's live sound, into one file that stays playable if the show is killed.

Start and stop:

- `run_show.py SHOW --record FILE` records from the first frame;
- `key:r` (the r key) toggles, a take replays it as any key;
- OSC `/record 1` starts, `/record 0` stops, `/record/toggle` toggles (an OSC
  message without arguments writes 1.0, so a bare `/record` starts).

A start without `--record FILE` (or a second start after a stop) writes
`recordings/SHOW-YYYYmmdd-HHMMSS.mkv` in the show file's folder; an existing file is
never overwritten (`-2`, `-3` ... are added to the name).

The frame loop reads each frame back as GL holds it (`Compositor.read_rgba`: raw
RGBA, 0.1 ms at 640x360 and 0.6 ms at 1280x720 on llvmpipe) and offers it to a
bounded queue; a writer thread feeds an ffmpeg process, which flips, converts and
encodes (h264). A full queue drops the frame and counts it: the show never waits for
the encoder. Sound blocks (`AudioInput.listen`, from the analysis thread) go the
same way through their own queue and a named pipe into the same file.

The video's timeline is wall time: a frame at show time t is frame
round((t - t0) * fps); a slot the loop left empty (a late or dropped frame) repeats
the frame before it, a second frame in one slot is skipped, and the file is as long
as the recording whatever the queue dropped (each frame is written once the next one
says how long the screen held it). The sound starts at the
same moment: the first block is placed by its arrival time, the rest follow by
sample count, a dropped block is replaced by silence.

Matroska (.mkv, the default) is written in clusters of at most half a second, an mp4
or mov in fragments of a second (`frag_keyframe+empty_moov`): a SIGKILL of the show,
even of ffmpeg, loses at most the last second (0.3 s measured, 0.5 s with sound).
ffmpeg runs in its own session, so a Ctrl-C stops the show, which then finishes the
file; a show killed alone leaves ffmpeg to finish it whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from runtime.errors import OutputError
from runtime.render.recorder import ffmpeg_exe
from runtime.signals import Event

log = logging.getLogger(__name__)

#: The bus signals that start and stop a recording (see the module docstring).
RECORD_KEY = "key:r"
RECORD_SIGNAL = "osc:/record"
TOGGLE_SIGNAL = "osc:/record/toggle"
#: Containers by suffix: both survive a kill of the writer.
SUFFIXES = (".mkv", ".mp4", ".mov")
#: Where a start without `--record FILE` writes, in the show file's folder.
FOLDER = "recordings"
#: Frames waiting for the encoder (8 at 1280x720 RGBA: 30 MB); beyond, dropped.
QUEUE_FRAMES = 8
#: Sound blocks waiting for the encoder (about 3 s of 1024-sample blocks at 44.1 kHz).
QUEUE_BLOCKS = 128
#: A start waits this long for the first sound block (its sample rate) before it
#: records the picture alone.
SOUND_WAIT_S = 2.0
#: The encoder's niceness (0 is the show's; 19 the least CPU).
ENCODER_NICE = 10
#: How long the end of a show waits for ffmpeg to finish the file.
FINISH_TIMEOUT_S = 30.0
#: When no sound block arrives (a file that ended, a device gone), silence is written
#: up to this far behind the present, so that ffmpeg keeps writing the picture.
SOUND_FILL_BEHIND_S = 0.25


@dataclass(frozen=True)
class RecordingState:
    """What a controller or the HUD shows of the live recording.

    Attributes:
        active: a recording is running.
        path: its file (the last one's after a stop; None before the first).
        elapsed_s: how long it has recorded (the last one's length after a stop).
        dropped: frames it dropped because the encoder fell behind.
        error: why the last recording failed, or None.
    """

    active: bool
    path: Path | None
    elapsed_s: float
    dropped: int
    error: str | None


def record_requests(events: Iterable[Event]) -> list[bool | None]:
    """The record requests among one frame's bus events, oldest first.

    Args:
        events: a bus snapshot's events.
    Returns:
        True (start), False (stop) or None (toggle) per request: a `key:r` press
        and `osc:/record/toggle` toggle, `osc:/record` starts at >= 0.5 and stops
        below (a release of the key, 0.0, is no request).
    Thread: any.
    """
    wanted: list[bool | None] = []
    for event in events:
        if event.name == RECORD_SIGNAL:
            wanted.append(event.value >= 0.5)
        elif event.name == TOGGLE_SIGNAL or (event.name == RECORD_KEY and event.value >= 0.5):
            wanted.append(None)
    return wanted


def check_record_path(path: Path) -> Path:
    """Check a `--record FILE` before the show starts.

    Returns:
        The path.
    Raises:
        OutputError: its suffix is not .mkv, .mp4 or .mov, or its folder is missing.
    Thread: any.
    """
    if path.suffix.lower() not in SUFFIXES:
        raise OutputError(
            f"--record {path}: expected a file ending in .mkv (Matroska, the default), "
            ".mp4 or .mov (fragmented); both stay playable if the show is killed"
        )
    if not path.parent.is_dir():
        raise OutputError(f"--record {path}: the folder {path.parent} does not exist")
    return path


def free_path(path: Path) -> Path:
    """`path`, or `NAME-2.SUFFIX`, `NAME-3.SUFFIX` ... the first that does not exist
    (a recording never overwrites one). Thread: main."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def default_path(folder: Path, show_name: str, now: datetime) -> Path:
    """`FOLDER/recordings/SHOW-YYYYmmdd-HHMMSS.mkv` (the show's name made safe for a
    file name). Thread: any."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in show_name).strip("-")
    return folder / FOLDER / f"{safe or 'show'}-{now:%Y%m%d-%H%M%S}.mkv"


def ffmpeg_command(
    exe: str,
    path: Path,
    size_px: tuple[int, int],
    fps: float,
    sound: tuple[Path, float] | None,
) -> list[str]:
    """The ffmpeg command of a live recording.

    Args:
        exe: the ffmpeg binary.
        path: the file; its suffix picks the container.
        size_px: the frames' (width, height); odd sizes lose their last column or
            row (h264 in yuv420p wants even ones).
        fps: the video's frame rate.
        sound: (the named pipe, its sample rate) for mono float32 sound, or None.
    Returns:
        The argument list: raw RGBA frames, bottom row first, on stdin.
    Thread: any.
    """
    width, height = size_px
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-n"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{width}x{height}"]
    cmd += ["-framerate", f"{fps:g}", "-i", "pipe:0"]
    if sound is not None:
        cmd += ["-f", "f32le", "-ar", f"{round(sound[1])}", "-ac", "1", "-i", str(sound[0])]
    cmd += ["-vf", "vflip,crop=trunc(iw/2)*2:trunc(ih/2)*2"]
    # zerolatency: no lookahead, so each frame is in the file within a second.
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", "18"]
    cmd += ["-pix_fmt", "yuv420p", "-g", str(max(1, round(fps)))]
    if sound is not None:
        cmd += ["-c:a", "aac", "-b:a", "192k"]
    if path.suffix.lower() == ".mkv":
        cmd += ["-f", "matroska", "-cluster_time_limit", "500"]
    else:
        cmd += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
    cmd += ["-flush_packets", "1", str(path)]
    return cmd


class Recording:
    """One file being recorded: an ffmpeg process, a video writer thread and, with
    sound, a sound writer thread.

    Args:
        path: the file (must not exist; its folder must).
        size_px: the frames' (width, height).
        fps: the video's frame rate.
        t0_s: the show time of its first frame.
        sample_rate_hz: the sound's rate, or None for a silent recording.
        queue_frames: frames that may wait for the encoder.
    Raises:
        OutputError: ffmpeg cannot be started.
    Thread: main (offer, finish); the analysis thread (hear).
    """

    def __init__(
        self,
        path: Path,
        size_px: tuple[int, int],
        fps: float,
        t0_s: float,
        *,
        sample_rate_hz: float | None = None,
        queue_frames: int = QUEUE_FRAMES,
    ) -> None:
        self.path = path
        self.size_px = size_px
        self.fps = fps
        self.t0_s = t0_s
        self.sample_rate_hz = sample_rate_hz
        self.last_s = t0_s
        self.end_s: float | None = None
        self.offered = 0
        self.dropped = 0
        self.written = 0
        self.blocks_dropped = 0
        self.error: str | None = None
        self._frames: queue.Queue[tuple[float, bytes]] = queue.Queue(queue_frames)
        self._blocks: queue.Queue[tuple[float, np.ndarray, int]] = queue.Queue(QUEUE_BLOCKS)
        self._gap = 0
        self._ending = threading.Event()
        self._t0_perf_s = time.perf_counter()  # t0_s on the perf_counter clock
        self._temp = Path(tempfile.mkdtemp(prefix="latentstage-rec-"))
        sound = None
        if sample_rate_hz is not None:
            self._pipe = self._temp / "sound.f32"
            os.mkfifo(self._pipe)
            sound = (self._pipe, sample_rate_hz)
        cmd = ffmpeg_command(ffmpeg_exe(), path, size_px, fps, sound)
        self._ffmpeg_log = self._temp / "ffmpeg.log"
        try:
            with open(self._ffmpeg_log, "wb") as err:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            shutil.rmtree(self._temp, ignore_errors=True)
            raise OutputError(f"{path}: cannot start ffmpeg ({exc.strerror or exc})") from None
        # The show first: an encoder short of CPU drops recorded frames (counted),
        # it must not take the frame loop's core. Its threads start with the first
        # frame, after this, and inherit the niceness.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, ENCODER_NICE)
        # Daemons: a process that ends without `finish` must not hang on them (the
        # file stays playable; the show's loop finishes it in its `finally`).
        self._threads = [
            threading.Thread(target=self._write_video, name="record-video", daemon=True)
        ]
        if sound is not None:
            self._threads.append(
                threading.Thread(target=self._write_sound, name="record-sound", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    @property
    def finished(self) -> bool:
        """ffmpeg has finished the file (or failed). Thread: any."""
        return not any(t.is_alive() for t in self._threads)

    def offer(self, rgba: bytes, t_s: float) -> bool:
        """Queue one frame for the encoder, or drop and count it when the queue is
        full.

        Args:
            rgba: width * height * 4 bytes, bottom row first (`Compositor.read_rgba`).
            t_s: its show time.
        Returns:
            True when queued.
        Thread: main.
        """
        self.last_s = t_s
        if self._ending.is_set():
            return False
        self.offered += 1
        try:
            self._frames.put_nowait((t_s, rgba))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def hear(self, block: np.ndarray, rate_hz: float, t_s: float) -> None:
        """Queue one sound block, or count it and leave silence in its place when the
        queue is full; never blocks.

        Args:
            block: mono float32 samples (a copy this recording may keep).
            rate_hz: their sample rate (blocks at another rate than the recording's
                are dropped and counted).
            t_s: the show time the block arrived (its last sample).
        Thread: the audio analysis thread (one producer).
        """
        if self.sample_rate_hz is None or self._ending.is_set():
            return
        if rate_hz != self.sample_rate_hz:
            self.blocks_dropped += 1
            self._gap += len(block)
            return
        try:
            self._blocks.put_nowait((t_s - len(block) / rate_hz, block, self._gap))
            self._gap = 0
        except queue.Full:
            self.blocks_dropped += 1
            self._gap += len(block)

    def finish(self, end_s: float) -> None:
        """End the recording at show time `end_s`: the writers drain their queues,
        pad both streams to `end_s` and ffmpeg finishes the file, all off this
        thread. Thread: main."""
        if not self._ending.is_set():
            self.end_s = max(end_s, self.t0_s)
            self._ending.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the file to be finished; True when it is. Thread: main."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.finished

    def _next(self, q: queue.Queue):
        """The next item, or None once the recording ends and `q` is empty."""
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                if self._ending.is_set() and q.empty():
                    return None

    def _write_video(self) -> None:
        stdin = self._proc.stdin
        # A frame is written once the next one (or the end) says how many slots the
        # screen held it for, so the file's length is the recording's whatever the
        # queue dropped: a frame at or after the end is left out.
        held: tuple[int, bytes] | None = None  # (its first slot, the frame)
        try:
            while (item := self._next(self._frames)) is not None:
                t_s, rgba = item
                slot = round((t_s - self.t0_s) * self.fps)
                if held is None:
                    held = (self.written, rgba)  # the first frame also fills the start
                    continue
                if slot <= held[0]:
                    continue  # a second frame in one slot
                for _ in range(slot - held[0]):
                    stdin.write(held[1])
                self.written = slot
                held = (slot, rgba)
            if held is not None:
                end_slot = (
                    round((self.end_s - self.t0_s) * self.fps)
                    if self.end_s is not None
                    else held[0] + 1
                )
                for _ in range(max(end_slot - held[0], 0 if self.written else 1)):
                    stdin.write(held[1])
                    self.written += 1
        except OSError as exc:  # ffmpeg died: disk full, killed
            self._fail(f"ffmpeg stopped taking frames ({exc.strerror or exc})")
        finally:
            self._ending.set()
            with contextlib.suppress(OSError):  # ffmpeg gone: nothing left to flush
                stdin.close()
        self._end()

    def _write_sound(self) -> None:
        pipe = self._open_pipe()
        if pipe is None:
            return
        rate = self.sample_rate_hz
        written = 0  # samples in the file
        expected: int | None = None  # where the next block starts, in samples
        try:
            with pipe:
                while True:
                    try:
                        item = self._blocks.get(timeout=0.1)
                    except queue.Empty:
                        if self._ending.is_set():
                            break
                        behind_s = time.perf_counter() - self._t0_perf_s - SOUND_FILL_BEHIND_S
                        if round(behind_s * rate) > written:
                            pipe.write(np.zeros(round(behind_s * rate) - written, np.float32))
                            written = round(behind_s * rate)
                            expected = None  # the next block is placed by its arrival
                        continue
                    t_first_s, block, gap = item
                    if expected is None:
                        expected = round((t_first_s - self.t0_s) * rate)
                    else:
                        expected += gap
                    start, expected = expected, expected + len(block)
                    if start > written:
                        pipe.write(np.zeros(start - written, np.float32))
                        written = start
                    if written - start < len(block):
                        pipe.write(block[written - start :].astype(np.float32, copy=False))
                        written = start + len(block)
                end = round((self._end_s() - self.t0_s) * rate)
                if end > written:
                    pipe.write(np.zeros(end - written, np.float32))
        except OSError as exc:
            self._fail(f"ffmpeg stopped taking sound ({exc.strerror or exc})")
            self._ending.set()

    def _open_pipe(self):
        """The named pipe's write end once ffmpeg reads it (after its first frame, which
        may come late: a recording started while the show rests); None when ffmpeg
        exits first."""
        while True:
            try:
                fd = os.open(self._pipe, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                if self._proc.poll() is not None:
                    self._fail("ffmpeg exited before it read the sound")
                    return None
                time.sleep(0.01)
                continue
            os.set_blocking(fd, True)
            return os.fdopen(fd, "wb")

    def _end_s(self) -> float:
        """Where both streams end: at `finish`'s time, or where the video got to when
        a writer failed first."""
        return self.end_s if self.end_s is not None else self.t0_s + self.written / self.fps

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def _end(self) -> None:
        """Wait for the sound writer and ffmpeg, then log what was recorded."""
        for thread in self._threads[1:]:
            thread.join(FINISH_TIMEOUT_S)
        try:
            code = self._proc.wait(FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        if code != 0:
            detail = self._ffmpeg_log.read_text(errors="replace").strip().splitlines()[-3:]
            self._fail(f"ffmpeg exited with {code}: {' / '.join(detail) or 'no message'}")
        shutil.rmtree(self._temp, ignore_errors=True)
        length = clock_text(self.written / self.fps)
        if self.error is not None:
            log.error("recording %s failed after %s: %s", self.path, length, self.error)
            return
        sound = ""
        if self.sample_rate_hz is not None:
            sound = f", sound at {self.sample_rate_hz:g} Hz ({self.blocks_dropped} blocks dropped)"
        log.info(
            "recorded %s: %s, %d frames, %d of %d dropped by the encoder's queue%s",
            self.path,
            length,
            self.written,
            self.dropped,
            self.offered,
            sound,
        )


def clock_text(seconds: float) -> str:
    """'01:02:03' for 3723.4 s. Thread: any."""
    whole = int(max(seconds, 0.0))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class LiveRecorder:
    """The live show's recorder: follows the record requests on the bus, reads back
    each frame while recording, hears the live sound.

    Args:
        show_name, folder: name the default file (`default_path`).
        size_px: the recorded size (the show's output size).
        fps: the show's frame rate.
        origin_s: the perf_counter time of show time 0.
        path: `--record FILE`: start at the first frame, into this file.
        sound: the show has a live audio input whose listener is `hear`; a start
            waits up to SOUND_WAIT_S for its first block.
    Thread: main, except `hear`.
    """

    def __init__(
        self,
        *,
        show_name: str,
        folder: Path,
        size_px: tuple[int, int],
        fps: float,
        origin_s: float,
        path: Path | None = None,
        sound: bool = False,
    ) -> None:
        self.show_name = show_name
        self.folder = folder
        self.size_px = size_px
        self.fps = fps
        self.origin_s = origin_s
        self.path = path
        self.sound = sound
        self.recording: Recording | None = None
        self.last: Recording | None = None
        self._rate_hz: float | None = None
        self._waiting_since: float | None = None if path is None else -1.0
        self._finishing: list[Recording] = []
        #: Why the last start failed, or None.
        self.failure: str | None = None
        # Find ffmpeg now: the first lookup takes 25 ms, a frame's budget; a missing
        # one is reported by the start that needs it.
        with contextlib.suppress(OutputError):
            ffmpeg_exe()

    @property
    def state(self) -> RecordingState:
        """Whether it records, into which file, for how long, frames dropped.
        Thread: main."""
        rec = self.recording or self.last
        if rec is None:
            return RecordingState(False, None, 0.0, 0, None)
        return RecordingState(
            self.recording is not None, rec.path, rec.last_s - rec.t0_s, rec.dropped, rec.error
        )

    def hear(self, block: np.ndarray, rate_hz: float) -> None:
        """`AudioInput.listen`'s listener: hand the block to the recording, if any.
        Thread: the audio analysis thread."""
        self._rate_hz = rate_hz
        rec = self.recording
        if rec is not None:
            rec.hear(block, rate_hz, time.perf_counter() - self.origin_s)

    def update(self, events: Iterable[Event], t_s: float) -> None:
        """Follow this frame's record requests (and a start waiting for sound).

        Args:
            events: the frame's bus events.
            t_s: the frame's show time.
        Thread: main.
        """
        for wanted in record_requests(events):
            active = self.recording is not None or self._waiting_since is not None
            if wanted is None:
                wanted = not active
            if wanted and not active:
                self._waiting_since = t_s
            elif not wanted and active:
                self._waiting_since = None
                self.stop(t_s)
        if self._waiting_since is not None:
            if self._waiting_since < 0.0:
                self._waiting_since = t_s
            if not self.sound or self._rate_hz is not None:
                self._start(t_s)
            elif t_s - self._waiting_since >= SOUND_WAIT_S:
                log.warning(
                    "recording: no sound arrived within %g s; recording the picture alone",
                    SOUND_WAIT_S,
                )
                self.sound = False
                self._start(t_s)
        rec = self.recording
        if rec is not None and rec.error is not None:
            self.stop(t_s)
        self._finishing = [r for r in self._finishing if not r.finished]

    @property
    def active(self) -> bool:
        """A recording runs: the loop reads frames back for it. Thread: main."""
        return self.recording is not None

    def frame(self, rgba: bytes, t_s: float) -> None:
        """Offer the frame just rendered, while recording.

        Args:
            rgba: the output read back (`Compositor.read_rgba` at `size_px`).
            t_s: its show time.
        Thread: main.
        """
        rec = self.recording
        if rec is not None:
            rec.offer(rgba, t_s)

    def stop(self, t_s: float) -> None:
        """Stop recording (the file is finished off this thread). Thread: main."""
        self._waiting_since = None
        rec = self.recording
        if rec is None:
            return
        self.recording = None
        self.last = rec
        rec.finish(t_s)
        self._finishing.append(rec)
        log.info("recording stopped: %s after %.2f s", rec.path, rec.end_s - rec.t0_s)

    def hud_lines(self) -> list[str]:
        """'REC 00:01:23  set.mkv  12 dropped' while recording; the last
        recording's end or failure after. Thread: main."""
        rec = self.recording or self.last
        if self.failure is not None and self.recording is None:
            return [f"rec failed: {self.failure}"]
        if rec is None:
            return []
        length = clock_text(rec.last_s - rec.t0_s)
        dropped = f"  {rec.dropped} dropped" if rec.dropped else ""
        if rec.error is not None:
            return [f"rec failed: {rec.path.name}: {rec.error}"]
        if self.recording is None:
            return [f"rec stopped: {rec.path.name}  {length}{dropped}   r: record"]
        sound = "  with sound" if rec.sample_rate_hz is not None else ""
        return [f"REC {length}  {rec.path.name}{sound}{dropped}   r: stop"]

    def close(self, t_s: float) -> None:
        """Stop recording and wait (at most FINISH_TIMEOUT_S) for every file to be
        finished. Thread: main, at the end of the show."""
        self.stop(t_s)
        for rec in self._finishing:
            if not rec.join(FINISH_TIMEOUT_S):
                log.error("recording: ffmpeg did not finish %s in time", rec.path)
        self._finishing = []

    def _start(self, t_s: float) -> None:
        self._waiting_since = None
        if self.path is not None:
            path, self.path = free_path(self.path), None
        else:
            path = free_path(default_path(self.folder, self.show_name, datetime.now()))
        rate = self._rate_hz if self.sound else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            rec = Recording(path, self.size_px, self.fps, t_s, sample_rate_hz=rate)
        except (OSError, OutputError) as exc:
            self.failure = f"cannot record to {path} ({exc})"
            log.error("recording: %s; the show plays on", self.failure)
            return
        self.failure = None
        self.recording = rec
        sound = f", sound at {rate:g} Hz" if rate else ""
        log.info("recording to %s (%dx%d at %g fps%s)", path, *self.size_px, self.fps, sound)
