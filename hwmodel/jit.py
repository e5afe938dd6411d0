"""Compiled kernels, with numba imported only when one runs (issue 18).

Every compiled function of hwmodel is declared with :func:`njit`, which takes numba's options
unchanged and returns a :class:`Kernel`. Importing a module of kernels imports no numba. A
kernel called from Python goes, in this order, to

* an ahead-of-time build of the current sources (:mod:`hwmodel.aot`) for exactly the types of
  the call's arguments, if this machine has one: the process need not import numba at all;
* else numba's own dispatcher for the same function (compiled, or loaded from numba's disk
  cache, as the plain ``numba.njit`` would be), created on that first call.

A kernel called from another compiled function is resolved by numba through the kernel's
dispatcher (``_numba_type_``, ``targetoptions``), so compiled code calls and inlines it exactly
as it would a plain numba function. There is one definition of each kernel: the Python
function under the decorator, which both routes compile.
"""

from __future__ import annotations

import functools

__all__ = ["Kernel", "kernels", "njit"]

#: Every kernel declared so far, in order of declaration (the ahead-of-time build's list).
_KERNELS: list[Kernel] = []


def kernels() -> list[Kernel]:
    """The kernels declared by the modules imported so far."""
    return list(_KERNELS)


def njit(*args, **options):
    """``numba.njit`` without importing numba: ``@njit``, ``@njit(cache=True, ...)`` or
    ``njit(cache=True)(function)``; ``options`` are numba's."""
    if args:
        if len(args) == 1 and callable(args[0]) and not options:
            return Kernel(args[0], {})
        raise TypeError("njit: expected a function or keyword options, as numba.njit takes "
                        "without a signature")
    return lambda function: Kernel(function, options)


class Kernel:
    """A compiled function: the Python function ``py_func`` and numba's ``options``."""

    def __init__(self, py_func, options: dict):
        functools.update_wrapper(self, py_func)
        self.py_func = py_func
        self.options = dict(options)
        self.key = f"{py_func.__module__}:{py_func.__qualname__}"
        self._dispatcher = None
        self._aot = None          # [(accepts(args), compiled function)], looked up once
        _KERNELS.append(self)

    def __call__(self, *args, **kwargs):
        if not kwargs:
            aot = self._aot
            if aot is None:
                aot = self._aot = _aot_entries(self)
            for accepts, compiled in aot:
                if accepts(args):
                    return compiled(*args)
        return (self._dispatcher or self.jit)(*args, **kwargs)

    @property
    def jit(self):
        """numba's dispatcher of this function (numba is imported and it is made on first
        use)."""
        if self._dispatcher is None:
            import numba
            self._dispatcher = numba.njit(**self.options)(self.py_func)
        return self._dispatcher

    @property
    def _numba_type_(self):
        """What numba types this kernel as, where compiled code refers to it."""
        return self.jit._numba_type_

    @property
    def targetoptions(self) -> dict:
        """numba's options of the dispatcher (read by numba's inlining pass)."""
        return self.jit.targetoptions

    def __getattr__(self, name: str):
        # the rest of numba's dispatcher interface (signatures, inspect_types, ...)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.jit, name)

    def __repr__(self) -> str:
        return f"<compiled kernel {self.key}>"


def _aot_entries(kernel: Kernel) -> list:
    """The ahead-of-time compiled variants of ``kernel`` on this machine (none when there is
    no build of the current sources, or ``HWMODEL_AOT=off``)."""
    from .aot import entries_for
    return entries_for(kernel.key)
