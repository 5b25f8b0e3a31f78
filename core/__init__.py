"""The pure core: event schema, decay state and its step, codec, log readers, generator, reports.

Imports numpy and orjson only (tests/unit/test_layers.py holds the rule), so models, the Faust
runtime and tools can all build on it without pulling in a framework.
"""
