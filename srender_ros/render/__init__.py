"""Renderers behind one small protocol, chosen by name (see :func:`srender_ros.render.registry.get_renderer`)."""
