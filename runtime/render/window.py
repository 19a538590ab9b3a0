"""The GLFW window: windowed or fullscreen on a chosen monitor, keys for the
performer, and the GL context the compositor draws with.

Keys: Esc or q quits, h toggles the HUD, f toggles fullscreen.
"""

from __future__ import annotations

import logging

import glfw
import moderngl

from runtime.errors import OutputError
from runtime.render.llvm import load_triton_first

log = logging.getLogger(__name__)

# GLFW reports through our log (debug level), not Python warnings on stderr.
glfw.ERROR_REPORTING = "log"


def monitors() -> list[str]:
    """Connected monitors as 'N: name WxH @ R Hz' lines; empty with no display or
    none connected. Leaves GLFW initialised (call glfw.terminate when done).

    Thread: main.
    """
    if not glfw.init():
        return []
    lines = []
    for i, monitor in enumerate(glfw.get_monitors() or []):
        mode = glfw.get_video_mode(monitor)
        lines.append(
            f"{i}: {glfw.get_monitor_name(monitor).decode(errors='replace')} "
            f"{mode.size.width}x{mode.size.height} @ {mode.refresh_rate} Hz"
        )
    return lines


class Window:
    """A GL 3.3 core window.

    Args:
        title: the window title.
        size_px: windowed size.
        fullscreen: start fullscreen on `monitor` (cursor hidden).
        monitor: monitor index.
        vsync: swap on the display's refresh.
    Raises:
        OutputError: no display, no such monitor, or no GL 3.3.
    Thread: main (GLFW requires it).
    """

    def __init__(
        self,
        title: str,
        size_px: tuple[int, int],
        *,
        fullscreen: bool = False,
        monitor: int = 0,
        vsync: bool = True,
    ) -> None:
        if not glfw.init():
            raise OutputError(
                "no display to open a window on (is DISPLAY set?); "
                "render without one: --headless --frames N --out FILE"
            )
        self.size_px = size_px
        self.monitor_index = monitor
        self.show_hud_toggled = False
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        load_triton_first()
        self.window = glfw.create_window(size_px[0], size_px[1], title, None, None)
        if not self.window:
            glfw.terminate()
            raise OutputError("could not create an OpenGL 3.3 window")
        glfw.make_context_current(self.window)
        glfw.swap_interval(1 if vsync else 0)
        glfw.set_key_callback(self.window, self._on_key)
        self.ctx = moderngl.create_context()
        self.fullscreen = False
        if fullscreen:
            self.set_fullscreen(True)

    def set_fullscreen(self, on: bool) -> None:
        """Go fullscreen on the chosen monitor (cursor hidden), or back to a window.

        Raises:
            OutputError: the monitor index does not exist.
        Thread: main.
        """
        if on:
            found = glfw.get_monitors() or []
            if self.monitor_index >= len(found):
                raise OutputError(
                    f"no monitor {self.monitor_index}: {len(found)} connected "
                    f"({'; '.join(monitors()) or 'none'}); `run_show.py devices` lists them"
                )
            monitor = found[self.monitor_index]
            mode = glfw.get_video_mode(monitor)
            glfw.set_window_monitor(
                self.window, monitor, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate
            )
            glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_HIDDEN)
        else:
            glfw.set_window_monitor(self.window, None, 80, 80, *self.size_px, 0)
            glfw.set_input_mode(self.window, glfw.CURSOR, glfw.CURSOR_NORMAL)
        self.fullscreen = on

    @property
    def framebuffer_px(self) -> tuple[int, int]:
        """The drawable size in px (differs from the window size on HiDPI). Thread: main."""
        width, height = glfw.get_framebuffer_size(self.window)
        return (max(width, 1), max(height, 1))

    def should_close(self) -> bool:
        """True once the performer asked to quit. Thread: main."""
        return bool(glfw.window_should_close(self.window))

    def swap(self) -> None:
        """Show the frame and handle window events. Thread: main."""
        glfw.swap_buffers(self.window)
        glfw.poll_events()

    def close(self) -> None:
        """Close the window and release GLFW. Thread: main."""
        self.ctx.release()
        glfw.destroy_window(self.window)
        glfw.terminate()

    def _on_key(self, window, key: int, scancode: int, action: int, mods: int) -> None:
        if action != glfw.PRESS:
            return
        if key in (glfw.KEY_ESCAPE, glfw.KEY_Q):
            glfw.set_window_should_close(window, True)
        elif key == glfw.KEY_H:
            self.show_hud_toggled = not self.show_hud_toggled
        elif key == glfw.KEY_F:
            try:
                self.set_fullscreen(not self.fullscreen)
            except OutputError as exc:
                log.error("%s", exc)
