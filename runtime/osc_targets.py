"""Every target at a fixed OSC address, without a mapping entry: `/ls/TARGET VALUE`.

    /ls/gen.zoom 1.2
    /ls/shader.kaleido.segments 6
    /ls/latent.hop 1            (a trigger: 1 then 0, like a button)

The value becomes the target's base value, the one `[set]` gives (and a scene
recall sets), clamped by the engine to the target's range. The last writer wins: a
target set here stops gliding in a scene's crossfade, and its `[[map]]` entries
wait until one of their sources sends a new value (runtime/mapping/engine.py
`held`).

The OSC input writes every message to the bus (`osc:/ls/gen.zoom`); the frame loop
reads them here from its snapshot's events, so a captured take replays them. An
address naming no target is logged with the closest target's name, once per
address and at most one line per LOG_EVERY_S overall; the rest are counted.
`run_show.py targets SHOW --osc` lists the addresses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from runtime.config import suggest
from runtime.mapping import MappingEngine, Target
from runtime.signals import Snapshot

log = logging.getLogger(__name__)

#: The address prefix: `/ls/TARGET`.
PREFIX = "/ls/"
_SIGNAL_PREFIX = f"osc:{PREFIX}"
#: At most one log line about unknown addresses this often (seconds).
LOG_EVERY_S = 10.0
#: Unknown addresses remembered (so each is logged once); beyond, only counted.
MAX_UNKNOWN = 256


def osc_address(target: str) -> str:
    """The OSC address of a target: `/ls/gen.zoom`. Thread: any."""
    return f"{PREFIX}{target}"


class OscTargets:
    """Applies `/ls/TARGET VALUE` messages from the bus to the engine's base values.

    Args:
        engine: the show's mapping engine.
    Thread: main (the frame loop).
    """

    def __init__(self, engine: MappingEngine) -> None:
        self.engine = engine
        self.targets: Mapping[str, Target] = engine.targets
        self.unknown = 0
        self._logged: set[str] = set()
        self._next_log_s = 0.0

    def apply(self, snapshot: Snapshot) -> list[str]:
        """Set the base value of every target this frame's `/ls/` messages name.

        Args:
            snapshot: the frame's bus snapshot.
        Returns:
            The targets set, in message order (a scene stops gliding them).
        Thread: main.
        """
        set_now: list[str] = []
        for event in snapshot.events:
            name = event.name
            if not name.startswith(_SIGNAL_PREFIX) or name.endswith("]"):
                continue  # not ours, or an argument of a message with several
            target = name[len(_SIGNAL_PREFIX) :]
            if target in self.targets:
                self.engine.base[target] = event.value
                self.engine.held.add(target)
                set_now.append(target)
            else:
                self._unknown(target)
        return set_now

    def _unknown(self, target: str) -> None:
        self.unknown += 1
        if target in self._logged or len(self._logged) >= MAX_UNKNOWN:
            return
        now = time.monotonic()
        if now < self._next_log_s:
            return
        self._logged.add(target)
        self._next_log_s = now + LOG_EVERY_S
        log.warning(
            "osc %s: no target %r%s; `run_show.py targets SHOW --osc` lists the addresses"
            " (%d unknown so far)",
            osc_address(target),
            target,
            suggest(target, self.targets),
            self.unknown,
        )

    def status(self) -> str | None:
        """'osc /ls/: 3 unknown addresses' for the HUD, or None. Thread: main."""
        return f"osc {PREFIX}: {self.unknown} to unknown targets" if self.unknown else None
