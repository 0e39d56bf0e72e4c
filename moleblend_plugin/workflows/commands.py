"""Commands as a user would type them."""
import shlex
from typing import Sequence


def shell_line(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(c)) for c in command)
