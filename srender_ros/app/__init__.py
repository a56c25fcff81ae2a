"""Layer 4: the composition root. One configuration in; store, backends and pipeline out.

Front ends (CLI, node, bag replay, label generation, and the coming gym env and Ray jobs) build
everything through :func:`srender_ros.app.compose.build_pipeline`; choices come from the backend
registries, defaults from the config dataclasses.
"""
