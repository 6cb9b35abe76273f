"""The reference programmer: a sans-IO protocol core (``core``) and a blocking client over a
real link (``client``). Clinician-programmer developers can read it as a worked example of
docs/protocol.md, and pumpemu's own CLI and tests use it."""
