"""Fault scenarios: a TOML file, a runner with backends, oracles over plant truth beside
firmware belief, and a built-in hazard library (docs/scenarios.md)."""
