"""The data contract (docs/contract.md, version 1): file I/O, validation and conventions.

This is the only part of :mod:`strainbench` that methods import.
"""

from .atomic import atomic_h5, atomic_path
from .conventions import (
    deformation_from_reciprocal,
    deformation_gradient,
    lattice_symmetry_deg,
    reciprocal_deformation,
    reduced_basis,
    rotation_matrix,
    strain_from_deformation,
    wrap_angle_deg,
)
from .dataset import (
    CONTRACT_VERSION,
    DATASET_FORMAT,
    LABEL_KEYS,
    DatasetInfo,
    DatasetReader,
    DatasetWriter,
    validate_dataset,
)
from .errors import ContractError
from .paths import check_output_path
from .strain import STRAIN_FORMAT, STRAIN_KEYS, StrainMaps, read_strain, write_strain

__all__ = [
    "CONTRACT_VERSION",
    "DATASET_FORMAT",
    "LABEL_KEYS",
    "STRAIN_FORMAT",
    "STRAIN_KEYS",
    "ContractError",
    "DatasetInfo",
    "DatasetReader",
    "DatasetWriter",
    "StrainMaps",
    "atomic_h5",
    "atomic_path",
    "check_output_path",
    "deformation_from_reciprocal",
    "deformation_gradient",
    "lattice_symmetry_deg",
    "read_strain",
    "reciprocal_deformation",
    "reduced_basis",
    "rotation_matrix",
    "strain_from_deformation",
    "validate_dataset",
    "wrap_angle_deg",
    "write_strain",
]
