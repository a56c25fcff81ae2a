"""Orchestration (layer 3): works on core values and ports only, never on a concrete backend.

Modules: ``tf_buffer`` (a time-indexed TF tree with interpolated lookups, used by bag replay and
the node's sensor cameras).
"""
