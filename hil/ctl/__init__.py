"""``pumpemu ctl``: the reference programmer on the command line (docs/ctl.md).

``command`` holds the click group, ``prescription_file`` reads TOML prescriptions,
``render`` words outcomes and tables. Quantities are parsed and printed by hil/quantities.py,
the one grammar every command shares (docs/quantities.md).
"""
