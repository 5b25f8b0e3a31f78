"""The pure steps of a worker's batch: parse, apply to user and item state, score and write
records, dead letters. No framework is imported here (tests/unit/test_layers.py holds it), so
every rule is tested without a broker or an event loop."""
