"""CPU counts and joblib's ``n_jobs`` arithmetic: a leaf module, imported by backends.

Example::

    >>> normalize_n_jobs(2.7)
    2
"""

from __future__ import annotations

import math
import numbers

__all__ = ["coerce_n_jobs", "cpu_count", "normalize_n_jobs"]


def cpu_count(only_physical_cores: bool = False) -> int:
    """Number of CPUs this process may use: CPU affinity and cgroup quotas count.

    ``only_physical_cores=True`` ignores hyper-threads where that is knowable.

    Example::

        >>> cpu_count() >= 1
        True
    """
    from loky import cpu_count as loky_cpu_count

    return int(loky_cpu_count(only_physical_cores=only_physical_cores))


def coerce_n_jobs(n_jobs: object) -> object:
    """``n_jobs`` as joblib stores it: a string of an integer or a float as an int.

    Floats are rounded down; anything else is returned as given (non-finite
    floats too: :func:`normalize_n_jobs` names them). Raises ``ValueError``
    naming ``n_jobs`` for a string that is not an integer.

    Example::

        >>> coerce_n_jobs("-2"), coerce_n_jobs(2.5), coerce_n_jobs(None)
        (-2, 2, None)
    """
    if isinstance(n_jobs, str):
        try:
            return int(n_jobs)
        except ValueError:
            raise ValueError(
                f"n_jobs must be an int, a float, a string of an int or None, got {n_jobs!r}"
            ) from None
    if (
        isinstance(n_jobs, numbers.Real)
        and not isinstance(n_jobs, numbers.Integral)
        and math.isfinite(n_jobs)
    ):
        return math.floor(float(n_jobs))
    return n_jobs


def normalize_n_jobs(n_jobs: object) -> int:
    """joblib's n_jobs arithmetic: -1 all CPUs, -2 all but one, floats rounded down.

    numpy's integers and floats follow the same rules as ``int`` and ``float``;
    a string of an integer (``"2"``) counts as that integer, as in joblib.
    Raises ``ValueError`` for 0 and other strings, ``TypeError`` for non-numbers and bools.
    """
    n_jobs = coerce_n_jobs(n_jobs)
    # numbers.Real rather than (int, float): scikit-learn hands over numpy
    # scalars such as np.int64. bool is an Integral but never a worker count.
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Real):
        raise TypeError(
            f"n_jobs must be an int, a float, a string of an int or None, got {n_jobs!r}"
        )
    if not isinstance(n_jobs, numbers.Integral):  # finite floats are ints by now
        raise ValueError(f"n_jobs must be finite, got {n_jobs!r}")
    count = int(n_jobs)
    if count == 0:
        raise ValueError("n_jobs == 0 in Parallel has no meaning; use None, 1, or -1 (all CPUs)")
    if count < 0:
        return max(cpu_count() + 1 + count, 1)
    return count
