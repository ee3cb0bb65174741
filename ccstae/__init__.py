"""CC-ST-AE: the cycle-consistent spatial-transforming autoencoder for 4D-STEM strain mapping."""

__version__ = "0.2.1"
