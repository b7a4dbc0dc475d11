"""An exact binomial bound for a split's observed share (no fixed tolerance to flake)."""

from __future__ import annotations

import math

#: A share this unlikely under the configured weight fails the test: about one
#: false failure in a million runs; 2,000 requests at 30 % still catch a 37.5 % share.
ALPHA = 1e-6


def two_sided_p(k: int, n: int, p: float) -> float:
    """The exact two-sided p-value of ``k`` successes in ``n`` trials of probability ``p``.

    The sum of the probabilities of every outcome no likelier than ``k``.
    """
    if p in (0.0, 1.0):
        return 1.0 if k == round(n * p) else 0.0

    def log_pmf(i: int) -> float:
        return (
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * math.log(p)
            + (n - i) * math.log1p(-p)
        )

    observed = log_pmf(k)
    return min(1.0, sum(math.exp(q) for i in range(n + 1) if (q := log_pmf(i)) <= observed + 1e-9))


def within(k: int, n: int, p: float) -> bool:
    return two_sided_p(k, n, p) > ALPHA
