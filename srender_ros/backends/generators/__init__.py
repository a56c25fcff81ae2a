"""Keyframe generators (procedural, diffusers) behind one protocol."""
