"""The search's checks read findings with scipy: load the numerical stack once, here.

pytester restores sys.modules after each test, and numpy's C extension can't be imported
twice in one process.
"""

import numpy  # noqa: F401
import scipy.stats  # noqa: F401
