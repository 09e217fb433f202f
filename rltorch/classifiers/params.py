"""scikit-learn's estimator protocol, without importing scikit-learn.

scikit-learn finds an estimator's parameters in the signature of its ``__init__`` and expects each to
be stored, as given, under its own name; ``get_params``/``set_params`` read and write them (``deep``:
with the parameters of any nested estimator as ``name__sub``); ``sklearn.base.clone`` rebuilds an
estimator from ``get_params(deep=False)``. :class:`Estimator` implements that protocol in plain Python,
so ``import rltorch.classifiers`` never imports scikit-learn, while ``clone``, ``Pipeline``,
``GridSearchCV`` and ``check_estimator`` treat rltorch's classifiers as their own. Only
``__sklearn_tags__`` imports scikit-learn, and only scikit-learn calls it.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

__all__ = ["Estimator", "sklearn_compatible"]


def sklearn_compatible(base: type, module: str, name: str) -> type:
    """``base``; or, once scikit-learn is loaded, a subclass of both ``base`` and scikit-learn's class of the same
    meaning (``sklearn.exceptions.NotFittedError``...), so that code written for scikit-learn catches rltorch's
    errors and warnings too, while rltorch never imports scikit-learn itself."""
    loaded = sys.modules.get(module)
    theirs = getattr(loaded, name, None) if loaded is not None else None
    return base if theirs is None else _both(base, theirs)


@functools.cache
def _both(base: type, theirs: type) -> type:
    return type(base.__name__, (base, theirs), {"__module__": base.__module__, "__doc__": base.__doc__})


class Estimator:
    """Parameters from the ``__init__`` signature: ``get_params``, ``set_params`` and a repr of the ones
    that differ from their defaults."""

    @classmethod
    def _param_names(cls) -> list[str]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
            raise TypeError(f"{cls.__name__}.__init__ must list its parameters explicitly (scikit-learn's "
                            "convention): no *args or **kwargs")
        return sorted(p.name for p in parameters if p.name != "self")

    def _store_params(self, values: dict[str, Any]) -> None:
        """Stores each constructor parameter as given (``values`` is the constructor's ``locals()``)."""
        for name in self._param_names():
            setattr(self, name, values[name])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters as stored; with ``deep``, also ``name__sub`` for each nested estimator."""
        params: dict[str, Any] = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update((f"{name}__{key}", sub) for key, sub in value.get_params().items())
            params[name] = value
        return params

    def set_params(self, **params: Any) -> Estimator:
        """Sets constructor parameters (``name__sub`` sets a nested estimator's); checked at the next ``fit``.
        Returns ``self``."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, nested_key, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. Valid "
                                 f"parameters are: {self._param_names()!r}.")
            if nested_key:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub_params in nested.items():
            valid[name].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays and other values without a plain truth value
                same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
