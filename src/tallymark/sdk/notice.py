"""The SDK's one way to tell the user something went wrong without raising into training code.

Warnings go to the process's real stderr (``sys.__stderr__``): the captured one (stdout/stderr
capture, ``sdk/autolog/stdout.py``) would send the warning back into the experiment, or into the
store that is failing. Messages often quote what the server or the store said, which may quote a
name the user logged: they are printed through :func:`tallymark.termsafe.clean`, so a stored escape
sequence never reaches the terminal.
"""

from __future__ import annotations

import sys

from tallymark.termsafe import clean


def warn(msg: str) -> None:
    """Print ``tallymark: MSG`` on the real stderr; never raises."""
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(f"tallymark: {clean(msg)}\n")
        stream.flush()
    except (OSError, ValueError):
        pass
