"""NDI output: every live frame as an NDI source (cyndilib, the `[ndi]` extra), for
TouchDesigner, Resolume, OBS or vMix on the network.

`run_show.py SHOW --ndi NAME` or `[output] ndi = "NAME"` in the show. The frame loop
offers each frame (raw RGBA as GL holds it, the read a live recording shares) to a
queue of two; a sender thread flips it upright and hands it to the NDI library. A
full queue drops the frame and counts it: the show never waits for the network.

Without cyndilib the show plays without NDI, and the log and the HUD say how to
install it. Receivers find the source by mDNS; where there is no mDNS responder
(this project's test machines), an NDI config (`NDI_CONFIG_DIR`, docs/PERFORMING.md)
names the sender's address.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from fractions import Fraction

import numpy as np

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e '.[ndi]' (or pip install cyndilib)"
#: Frames waiting for the sender; beyond, dropped and counted.
QUEUE_FRAMES = 2
#: How long `close` waits for the sender thread.
CLOSE_TIMEOUT_S = 5.0


class NdiOutput:
    """An NDI source sending the live frames.

    Args:
        name: the source's name (receivers list it as "HOST (NAME)").
        size_px: the frames' (width, height).
        fps: the frame rate the source announces.
    Thread: main (offer, hud_lines, close); the sender runs on its own thread.
    """

    def __init__(self, name: str, size_px: tuple[int, int], fps: float) -> None:
        self.name = name
        self.size_px = size_px
        self.fps = fps
        self.sent = 0
        self.dropped = 0
        #: Why nothing is sent (cyndilib missing, the sender failed), or None.
        self.problem: str | None = None
        self._frames: queue.Queue[bytes | None] = queue.Queue(QUEUE_FRAMES)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ndi-sender", daemon=True)
        self._thread.start()
        self._ready.wait(CLOSE_TIMEOUT_S)

    def offer(self, rgba: bytes) -> bool:
        """Queue one frame, or drop and count it when the sender is behind.

        Args:
            rgba: width * height * 4 bytes, bottom row first (`Compositor.read_rgba`).
        Returns:
            True when queued.
        Thread: main.
        """
        if self.problem is not None:
            return False
        try:
            self._frames.put_nowait(rgba)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def hud_lines(self) -> list[str]:
        """'ndi NAME  1234 sent  2 dropped', or the problem. Thread: main."""
        if self.problem is not None:
            return [f"ndi: {self.problem}"]
        dropped = f"  {self.dropped} dropped" if self.dropped else ""
        return [f"ndi {self.name}  {self.sent} sent{dropped}"]

    def close(self) -> None:
        """Stop the sender and close the source. Thread: main."""
        while True:
            try:
                self._frames.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):  # make room for the end
                    self._frames.get_nowait()
        self._thread.join(CLOSE_TIMEOUT_S)
        log.info("ndi %s: %d frames sent, %d dropped", self.name, self.sent, self.dropped)

    def _run(self) -> None:
        try:
            sender = self._open()
        except ImportError as exc:
            self._give_up(f"cyndilib is not installed ({exc}); {INSTALL_HINT}")
            return
        except Exception as exc:  # the NDI library's own failures: the show plays on
            self._give_up(f"cannot open the NDI sender ({type(exc).__name__}: {exc})")
            return
        log.info("ndi: sending %dx%d as %r", *self.size_px, self.name)
        self._ready.set()
        width, height = self.size_px
        try:
            while (rgba := self._frames.get()) is not None:
                upright = np.frombuffer(rgba, np.uint8).reshape(height, width, 4)[::-1]
                sender.write_video(np.ascontiguousarray(upright).reshape(-1))
                self.sent += 1
        except Exception as exc:  # a sender that fails must not end the show
            self._give_up(f"the NDI sender failed ({type(exc).__name__}: {exc})")
        finally:
            sender.close()

    def _open(self):
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC

        # The frame loop paces the frames: the library must not wait a frame time.
        sender = Sender(self.name, clock_video=False)
        frame = VideoSendFrame()
        frame.set_resolution(*self.size_px)
        frame.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        frame.set_fourcc(FourCC.RGBA)
        sender.set_video_frame(frame)
        sender.open()
        return sender

    def _give_up(self, problem: str) -> None:
        self.problem = problem
        log.error("ndi: %s; the show plays without NDI", problem)
        self._ready.set()
