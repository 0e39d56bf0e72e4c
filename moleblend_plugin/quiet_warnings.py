"""Third-party warnings that every fairseq-train run prints and that say nothing about the
run: fairseq 0.12 uses Hydra's and torch's older APIs. Each is silenced by its own text
only; any other warning still shows."""
import warnings

KNOWN_HARMLESS = [
    # fairseq 0.12 composes its config with Hydra 1.0-era calls
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In 'config': Usage of deprecated keyword in package header"),
    (UserWarning, r"\s*'config' is validated against ConfigStore schema"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
    # fairseq asks for pinned memory and wraps steps in torch.cuda.amp even on CPU
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
    (FutureWarning, r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated"),
    (DeprecationWarning, r"`torch\.jit\.script` is deprecated"),
]


def silence_known_warnings() -> None:
    for category, message in KNOWN_HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)
