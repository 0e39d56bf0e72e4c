from . import fused_adam  # noqa: F401  (registration)
