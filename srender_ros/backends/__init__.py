"""Layer 2: backends that implement the ports of ``srender_ros.core.ports``.

``render`` (cpu, gsplat, float64 reference), ``generators`` (procedural, diffusers), ``learned``
(the keyframe-count predictor's run time), ``refine`` (photometric refinement), ``export`` (world
export formats). Each imports only layer 1; heavy libraries (torch, gsplat, diffusers, pxr) are
imported inside the backend, and a missing one is reported with a clear error naming it. Each
family has a dict registry (name -> factory).
"""
