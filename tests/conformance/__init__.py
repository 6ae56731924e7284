"""Conformance tests: one contract for the emulator and a real MongoDB 8.2 + mongot (see helpers.py)."""
