"""Scene specs: models, distributions and the YAML loader."""

from .distributions import Distribution, parse_distribution
from .loader import load_spec, parse_overrides, spec_from_dict, spec_from_text
from .models import Backgrounds, ClassSource, Output, Placement, Spec

__all__ = [
    "Backgrounds",
    "ClassSource",
    "Distribution",
    "Output",
    "Placement",
    "Spec",
    "load_spec",
    "parse_distribution",
    "parse_overrides",
    "spec_from_dict",
    "spec_from_text",
]
