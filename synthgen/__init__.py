"""synthgen: synthetic training data for computer vision with labels from the final pixels."""

__version__ = "0.1.0"

from .errors import SpecError, SynthgenError, SynthgenWarning  # noqa: E402
from .generator import Generator  # noqa: E402
from .sample import Annotation, Sample  # noqa: E402
from .spec import Spec, load_spec  # noqa: E402

__all__ = ["Annotation", "Generator", "Sample", "Spec", "SpecError", "SynthgenError", "SynthgenWarning", "__version__", "load_spec"]
