"""strainbench: a reproducible benchmark of 4D-STEM strain mapping under noise.

The harness library: the polycrystal simulator (kinematic and multislice engines), the paper's
noise model, the data contract (:mod:`strainbench.io`), the metric, tables and figures.
"""

__version__ = "0.2.1"
