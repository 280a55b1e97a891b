"""Scene specs: models, distributions and the YAML loader."""

from .distributions import Distribution, parse_distribution
from .loader import AnySpec, load_spec, parse_overrides, spec_from_dict, spec_from_text
from .models import Backgrounds, ClassSource, Output, Placement, Spec
from .renderer import RendererSpec

__all__ = [
    "AnySpec",
    "RendererSpec",
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
