"""``typing.NamedTuple``'s class syntax without importing ``typing`` (about 7 ms of cold start,
most of it ``re``, ``contextlib`` and the ``ForwardRef`` compiled for each field's annotation).

A module writes ``if TYPE_CHECKING: from typing import NamedTuple`` and ``else: from ._tuple
import NamedTuple``: mypy sees the real one, and at runtime a class body becomes the same
``collections.namedtuple`` that ``typing`` builds (fields in annotation order, the defaults,
the methods, properties and docstring; ``_make``, ``_fields`` and ``_replace`` as ever). One
difference: ``__annotations__`` keeps the strings ``from __future__ import annotations`` made,
where ``typing`` wraps each in a ``ForwardRef``.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy knows the name
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["NamedTuple"]

# as typing has them: namedtuple's own machinery, and the names it sets itself
_PROHIBITED = frozenset(
    {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults"}
    | {"_make", "_replace", "_asdict", "_source"}
)
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


def _annotations(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The class body's annotations, in order. With ``from __future__ import annotations``
    (every module here) they are a dict in the namespace, on Python 3.14 too; without it, 3.14
    (PEP 649) leaves an annotate function instead, asked here as ``typing`` asks it."""
    if "__annotations__" in namespace:
        return dict(namespace["__annotations__"])
    try:  # (only for a class body without the future import)
        import annotationlib  # type: ignore[import-not-found, unused-ignore]  # 3.14
    except ImportError:  # before 3.14: a body without __annotations__ has no annotations
        return {}
    annotate = annotationlib.get_annotate_from_class_namespace(namespace)
    if annotate is None:
        return {}
    forward = annotationlib.Format.FORWARDREF  # a name not defined yet is no error
    return dict(annotationlib.call_annotate_function(annotate, forward))


class _Builder(type):
    def __new__(cls, typename: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(cls, typename, bases, namespace)
        if bases != (NamedTuple,):
            raise TypeError("can only inherit from a NamedTuple type")
        types = _annotations(namespace)
        default_names: list[str] = []
        for field_name in types:
            if field_name in namespace:
                default_names.append(field_name)
            elif default_names:
                raise TypeError(
                    f"Non-default namedtuple field {field_name} cannot follow default field"
                    f"{'s' if len(default_names) > 1 else ''} {', '.join(default_names)}"
                )
        defaults = [namespace[name] for name in default_names]
        fields = list(types)
        # (mypy reads a namedtuple() call as a definition, which wants literals)
        record = collections.namedtuple(typename, fields, defaults=defaults)  # type: ignore[misc]
        record.__module__ = namespace["__module__"]
        record.__annotations__ = record.__new__.__annotations__ = types
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
            if key not in _SPECIAL and key not in record._fields:
                setattr(record, key, value)
        for key, value in namespace.items():  # as typing does since 3.12
            set_name = getattr(type(value), "__set_name__", None)
            if set_name is not None and key not in record._fields:
                set_name(value, record, key)
        return record


class NamedTuple(metaclass=_Builder):
    """Subclass it with annotated fields: the class made is a ``collections.namedtuple``."""
