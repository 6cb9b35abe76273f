"""pumpemu's outside world: links (serial, pty, memory), the serve loop, the reference
programmer, link-fault proxy, control API, captures, scenarios and the ``pumpemu`` CLI.

The only package that does I/O or reads a clock. Imports point hil -> emulator -> protocol.
"""
