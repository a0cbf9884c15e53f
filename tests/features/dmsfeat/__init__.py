"""Support code for the feature suite: drive dms-exec, query the engine, fake servers, per-backend adapters.

Nothing here defines steps; tests/features/steps/ does, and environment.py wires the pieces per scenario.
"""
