"""Renderers behind one small protocol, chosen by name (see :func:`srender_ros.backends.render.registry.get_renderer`)."""
