"""seglib: human body-part segmentation on Pascal-Part, reproducing and extending a course report."""
from .errors import SeglibError

__version__ = "0.1.0"
__all__ = ["SeglibError", "__version__"]
