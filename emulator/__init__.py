"""A stateful Tableau REST API emulator that tableauserverclient 0.42 can run against.

`model` holds the site state, `generator` builds deterministic sites, `runner.EmulatorServer` serves
one on a local port, `cli` is `tableau-steward emulator`, and `testing` has the test helpers.
"""
