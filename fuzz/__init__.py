"""Fuzz harnesses for pumpemu (issue 11 part 5); docs/fuzzing.md tells how to run them.

``fuzz.harnesses`` holds one check per target, each a function of one ``bytes`` input that
raises ``AssertionError`` when a property breaks and lets any exception outside the
project's error families escape. The same functions run under atheris (``python -m
fuzz.run``, coverage-guided, millions of inputs) and under hypothesis in the default test
suite (tests/protocol/test_fuzz_harnesses.py, tests/emulator/test_fuzz_harnesses.py), so
each check is defined once. ``fuzz.seeds`` builds the seed inputs from the documented test
vectors; ``fuzz/corpus/`` keeps a small corpus in the repository.

This directory is a top-level tool like ``benchmarks/``, not part of the installed
distribution: it is type-checked (``[tool.mypy] files``) and linted with the rest.
"""
