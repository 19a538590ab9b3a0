"""What this machine offers a show: MIDI input ports, audio devices, monitors.

Behind `run_show.py devices`. Every probe answers with a sentence when its device
or system is absent (no ALSA sequencer, no PortAudio, no display); none raises.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what C libraries (ALSA, JACK, PortAudio) print while they are probed.

    Swaps the process's file descriptor 2, so it is only for single-threaded
    commands (this one, test and benchmark set-up).
    Thread: main, with no other thread writing to stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def midi_lines() -> list[str]:
    """One line per rtmidi API and one per input port. Thread: main."""
    from runtime.inputs import midi
    from runtime.inputs.clock import link_available

    with quiet_stderr():
        found = midi.list_input_ports()
    lines = ["MIDI input ports (give a name substring in [inputs.midi] ports):"]
    for api, ports in found.items():
        if isinstance(ports, str):
            lines.append(f'  api = "{api}": {ports}')
            continue
        lines.append(f'  api = "{api}": {len(ports)} port(s)')
        lines += [f"    {name}" for name in ports]
    if not found:
        lines.append("  none: python-rtmidi has no MIDI API on this machine")
    link = "aalink installed" if link_available() else "not available (pip install aalink)"
    lines.append(f'Ableton Link ([inputs.clock] source = "link"): {link}')
    return lines


def audio_lines() -> list[str]:
    """One line per audio device, or why there are none. Thread: main."""
    lines = ["Audio devices:"]
    try:
        with quiet_stderr():
            import sounddevice

            devices = sounddevice.query_devices()
            apis = sounddevice.query_hostapis()
    except ImportError:
        return [*lines, "  none (the sounddevice package is not installed)"]
    except OSError as exc:  # the PortAudio library itself is missing
        return [*lines, f"  none ({exc}; apt-get install libportaudio2)"]
    except Exception as exc:  # PortAudioError: PortAudio present, no usable host API
        return [*lines, f"  none ({exc})"]
    if len(devices) == 0:
        return [*lines, "  none (PortAudio found no device)"]
    for index, dev in enumerate(devices):
        api = apis[dev["hostapi"]]["name"]
        lines.append(
            f"  {index}: {dev['name']} ({api}): {dev['max_input_channels']} in, "
            f"{dev['max_output_channels']} out, {dev['default_samplerate']:g} Hz"
        )
    return lines


def monitor_lines() -> list[str]:
    """One line per monitor with its current mode, or 'no display'. Thread: main."""
    import glfw

    from runtime.render.window import monitors

    lines = ["Monitors ([output] monitor = N):"]
    old_reporting = glfw.ERROR_REPORTING
    glfw.ERROR_REPORTING = "ignore"
    try:
        if not glfw.init():
            return [*lines, "  no display (GLFW could not start: no DISPLAY or Wayland session)"]
        try:
            found = monitors()
        finally:
            glfw.terminate()
    finally:
        glfw.ERROR_REPORTING = old_reporting
    return lines + ([f"  {line}" for line in found] or ["  none (the display reports no monitor)"])


def report() -> list[str]:
    """Every line of `run_show.py devices`. Thread: main."""
    return [*midi_lines(), *audio_lines(), *monitor_lines()]
