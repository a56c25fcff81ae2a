"""Ports: the Protocols the orchestration talks to, and the plain values that cross them.

Backends (layer 2) implement them; the engine (layer 3) depends on them and on nothing concrete.
"""
