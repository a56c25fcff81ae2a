"""Layer 2: implementations of the ports (renderers, generators, exporters...). Imports only srender_ros.core."""
