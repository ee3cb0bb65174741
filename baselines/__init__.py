"""Baseline strain-mapping methods, one folder each (``method.yaml`` + a program)."""
