"""Conformance runner: CPython's loop-generic asyncio tests against a given event loop.

See README.md in this directory.
"""
