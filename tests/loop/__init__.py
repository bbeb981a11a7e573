"""Behaviour tests for the core event loop, run on every implementation in conftest.py.

A package (not loose modules) so that its module names cannot collide with the
test modules of tests/core/ or tests/conformance/.
"""
