"""The emulated pump: profiles, plant (physical truth), firmware (what the pump believes and
decides) and the exact, event-driven delivery engine. Time enters only as an integer ``now``.

Imports point one way: emulator may import protocol, never hil.
"""

from emulator.pump import Pump

__all__ = ["Pump"]
