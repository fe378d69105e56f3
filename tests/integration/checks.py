"""The integration tests' checks: unlike `assert`, they are not compiled away under `python -O`
or PYTHONOPTIMIZE, and a test run optimised that way refuses to start rather than pass
without checking."""

import sys

if sys.flags.optimize or not __debug__:
    print("FAIL: the integration tests refuse to run with python -O or PYTHONOPTIMIZE set "
          "(unset it)", flush=True)
    sys.exit(1)


class CheckFailed(AssertionError):
    """A check that did not hold (an AssertionError, so it reads like one)."""


def check(cond, msg="check failed"):
    """Fail the test with msg unless cond holds."""
    if not cond:
        raise CheckFailed(msg)


def check_eq(got, want, what="value"):
    """Fail unless got == want, naming both."""
    if got != want:
        raise CheckFailed("%s is %r, expected %r" % (what, got, want))


def check_in(needle, hay, what="output"):
    """Fail unless needle occurs in hay, showing hay."""
    if needle not in hay:
        raise CheckFailed("%r not in %s:\n%s" % (needle, what, hay))
