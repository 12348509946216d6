"""What an experiment records without being asked: environment, packages, git, code, output, system.

Each collector is a plain function or a small class with no side effects at import: importing this
package starts no thread, spawns no process, patches no stream and does not import ``psutil``
(the system monitor imports it in its own thread).

Example::

    from tallymark.sdk import autolog
    record = {
        "env": autolog.collect_environment(),
        "packages": autolog.installed_packages(),
        "git": autolog.collect_git(),      # None outside a repository
        "code": autolog.collect_code(),    # None when there is no script or notebook
    }
"""

from __future__ import annotations

from .code import MAX_CODE_BYTES, CodeTooLargeError, collect_code, entry_script_path
from .env import ENV_ALLOWLIST, collect_environment, current_user
from .git import MAX_DIFF_BYTES, collect_git, strip_url_credentials
from .packages import as_requirements, installed_packages
from .stdout import OutputCapture
from .system import SystemMonitor

__all__ = [
    "ENV_ALLOWLIST",
    "MAX_CODE_BYTES",
    "MAX_DIFF_BYTES",
    "CodeTooLargeError",
    "OutputCapture",
    "SystemMonitor",
    "as_requirements",
    "collect_code",
    "collect_environment",
    "collect_git",
    "current_user",
    "entry_script_path",
    "installed_packages",
    "strip_url_credentials",
]
