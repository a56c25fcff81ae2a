"""Tooling that is not needed at run time (label generation and training of the learned predictor).

It sits beside the front ends and may use every layer below; nothing at run time imports it.
"""
