"""Layer 3: orchestration on ports only (no concrete backend is imported here).

``coverage`` (the coverage probe), ``scheduler`` (the keyframe walk and its reasons), ``lifting``
(keyframes -> Gaussians, and merging a keyframe into a world), ``resolution`` (the detail rule),
``pipeline`` (one request, chunk by chunk), ``tf_buffer`` (a time-indexed TF tree with
interpolated lookups, used by bag replay and the node's sensor cameras).
"""
