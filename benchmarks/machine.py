"""What every benchmark report states about where it ran: the code, the machine and the library versions."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib.metadata import version as package_version

from mlops_core.registry import code_version


def machine_info(packages: list[str]) -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return {
        "code": code_version(),
        "CPUs": f"{os.cpu_count()} (usable {usable})",
        "RAM": f"{memory_gb:.0f} GB",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "OS": f"{platform.system()} {platform.release()} {platform.machine()}",
        **{name: package_version(name) for name in packages},
    }
