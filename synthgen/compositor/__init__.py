"""The cut-and-paste backend: assets, planning, placement, blending, the backend, and the bank
of real cutouts (``synthgen extract``)."""
