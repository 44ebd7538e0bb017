"""How a process runs the course: thread counts and seeds (framework-free; each backend's
seed_everything adds its framework's own)."""
from __future__ import annotations

import os
import random

import numpy as np


def default_threads() -> int:
    """Threads per process: $COURSE_THREADS when set (the test run sets 1), else every core."""
    return max(1, int(os.environ.get("COURSE_THREADS", os.cpu_count() or 1)))


def seed_python_and_numpy(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
