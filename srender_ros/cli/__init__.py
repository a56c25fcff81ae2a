"""The `srender` command line (demo, render, bag, world, scheduler)."""
