"""``pumpemu ctl``: the reference programmer on the command line (docs/ctl.md).

``command`` holds the click group, ``prescription_file`` reads TOML prescriptions,
``quantities`` parses and prints human units exactly, ``render`` words outcomes and tables.
"""
