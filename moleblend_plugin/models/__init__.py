from . import moleblend  # noqa: F401
