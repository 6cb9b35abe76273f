"""The pump's firmware: what the pump believes and decides (docs/architecture.md principle 3).

- ``therapy_table``: the therapy state machine as data (principle 6);
- ``interlocks``: prescription and bolus limits, each breach a specific RefusalCode;
- ``schedule``: flex schedules on the pump's clock, and volume-to-time predictions;
- ``alarms`` and ``event_log``: what a programmer reads out;
- ``nvram``: the checksummed non-volatile record (H4 reset, H8 memory error);
- ``results``: reply values (Accepted, Refused, ...): a refusal is a value, not an exception;
- ``firmware``: the Firmware class that joins them and drives the delivery engine.
"""
