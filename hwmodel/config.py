"""YAML configuration loaded into frozen, keyword-only attrs classes.

Every parameter class in hwmodel is an ``attrs.frozen`` class whose fields are declared with
:func:`param`, which records a one-line description (and so the parameter dump can explain
itself). :func:`from_dict` builds such a class from plain data (parsed YAML) and reports every
problem as a :class:`ConfigError` naming the file, the YAML path, the bad value and what was
expected; :func:`to_dict` is its inverse, so ``from_dict(cls, to_dict(obj)) == obj``.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import yaml

__all__ = [
    "ConfigError",
    "describe",
    "dump_yaml",
    "fraction",
    "from_dict",
    "load_preset",
    "load_yaml",
    "non_negative",
    "param",
    "parse_yaml",
    "positive",
    "to_dict",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown, mistyped or impossible.

    Parameters
    ----------
    path : str
        The dotted YAML path of the culprit, e.g. ``wafer.d2d.bandwidth_GBps``.
    message : str
        What is wrong: the bad value and what was expected.
    source : str or None
        The file the value came from, if any.
    """

    def __init__(self, path: str, message: str, source: str | None = None):
        self.path = path
        self.source = source
        self.message = message
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path or '<top level>'}: {message}")


def param(doc: str, *, default: Any = attrs.NOTHING, validator=None, factory=None):
    """Declare a documented parameter field (keyword-only, with a one-line description)."""
    kwargs: dict[str, Any] = {"metadata": {"doc": doc}, "kw_only": True}
    if factory is not None:
        kwargs["factory"] = factory
    elif default is not attrs.NOTHING:
        kwargs["default"] = default
    if validator is not None:
        kwargs["validator"] = validator
    return attrs.field(**kwargs)


def _check(predicate, expected: str):
    def validate(instance, attribute, value):
        if not predicate(value):
            raise ValueError(f"{attribute.name} must be {expected}, not {value!r}")
    return validate


positive = _check(lambda v: v > 0, "greater than zero")
non_negative = _check(lambda v: v >= 0, "zero or more")
fraction = _check(lambda v: 0 < v <= 1, "in (0, 1]")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _convert(tp, value, path: str, source: str | None):
    """Convert plain data ``value`` to type ``tp``, or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if isinstance(value, str) and str in inner:   # e.g. int | str: a word of the field's
            return value                              # own (its validator checks the word)
        return _convert(inner[0], value, path, source)
    if attrs.has(tp):
        return from_dict(tp, value, path=path, source=source)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, not {value!r}", source)
        item_type = args[0] if args else Any
        items = [_convert(item_type, v, f"{path}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, not {value!r}", source)
        key_type, value_type = args if args else (Any, Any)
        return {_convert(key_type, k, f"{path}.{k}", source):
                _convert(value_type, v, f"{path}.{k}", source) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, not {value!r}", source)
        if not math.isfinite(value):
            raise ConfigError(path, f"expected a finite number, not {value!r}", source)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, not {value!r}", source)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, not {value!r}", source)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, not {value!r}", source)
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(path, f"expected {_type_name(tp)}, not {value!r}", source)
    return value


def from_dict(cls, data, *, path: str = "", source: str | None = None):
    """Build the attrs class ``cls`` from the mapping ``data``.

    Raises
    ------
    ConfigError
        On an unknown key, a missing required key, a wrong type or a value its validator
        rejects; the message names ``source``, the dotted path, the value and what was expected.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping of {cls.__name__} parameters, "
                          f"not {data!r}", source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(_join(path, str(key)),
                              f"unknown key {key!r} for {cls.__name__}; expected one of: {known}",
                              source)
    kwargs = {}
    for name, field in fields.items():
        sub = _join(path, name)
        if name not in data:
            if field.default is attrs.NOTHING:
                raise ConfigError(sub, f"missing required key {name!r} "
                                  f"({field.metadata.get('doc', '')})", source)
            continue
        kwargs[name] = _convert(hints[name], data[name], sub, source)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        # raised by the class's own cross-field checks, with a path relative to it
        raise ConfigError(_join(path, error.path), error.message, source) from error
    except (ValueError, TypeError) as error:
        # attrs validators raise with the attribute name unknown to us: find it in the message.
        culprit = getattr(error, "path", None) or _culprit(error, fields, path)
        raise ConfigError(culprit, str(error), source) from error


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _culprit(error, fields, path):
    text = str(error)
    for name in fields:
        if text.startswith(name) or f"'{name}'" in text:
            return _join(path, name)
    return path


def to_dict(obj) -> dict:
    """Plain data (dicts, lists, numbers, strings) of an attrs parameter object, in field order."""
    def value(v):
        if attrs.has(type(v)):
            return to_dict(v)
        if isinstance(v, (tuple, list)):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        return v
    return {f.name: value(getattr(obj, f.name)) for f in attrs.fields(type(obj))}


#: Largest configuration file read (bytes): presets are a few KB.
MAX_YAML_BYTES = 1 << 20
#: Deepest nesting of mappings and lists accepted in a configuration file.
MAX_YAML_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that rejects aliases (no ``&anchor``/``*alias`` expansion bombs), duplicate
    keys and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(None, None, "YAML aliases (*name) are not supported; "
                                       "expected plain values", event.start_mark)
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_YAML_DEPTH:
            raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_YAML_DEPTH} "
                                       "levels", self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.MarkedYAMLError(None, None, f"duplicate key {key!r}; expected each "
                                           "key once", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str):
    """Parse configuration YAML with :class:`_StrictLoader` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_StrictLoader)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: the problem and its line:column."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}{problem}"


def load_yaml(cls, file, *, path: str = ""):
    """Load ``cls`` from a YAML file; errors name the file and the YAML path.

    The file is bounded (:data:`MAX_YAML_BYTES`, :data:`MAX_YAML_DEPTH`); aliases and
    duplicate keys are rejected.
    """
    file = Path(file)
    try:
        size = file.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(path, f"file of {size} bytes; expected at most {MAX_YAML_BYTES}",
                              str(file))
        text = file.read_text()
    except OSError as error:
        raise ConfigError(path, f"cannot read: {error.strerror}", str(file)) from error
    except UnicodeDecodeError as error:
        raise ConfigError(path, f"not UTF-8 text ({error.reason} at byte {error.start})",
                          str(file)) from error
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(path, f"not valid YAML: {_yaml_problem(error)}", str(file)) from error
    if path:
        for part in path.split("."):
            if not isinstance(data, dict) or part not in data:
                raise ConfigError(path, f"missing section {part!r}", str(file))
            data = data[part]
    return from_dict(cls, data, path=path, source=str(file))


def load_preset(cls, name_or_path, *, root: str, presets: tuple[str, ...]):
    """Load ``cls`` from a built-in preset (``hwmodel/presets/<root>s/<name>.yaml``) or a file.

    Both hold the fields under a top-level ``root`` key (``wafer:``, ``model:``).

    Raises
    ------
    ConfigError
        Unknown preset name, unreadable file, or a bad value (naming file and YAML path).
    """
    from importlib import resources
    text = str(name_or_path)
    if text in presets:
        folder = resources.files("hwmodel.presets") / f"{root}s"
        with resources.as_file(folder / f"{text}.yaml") as path:
            return load_yaml(cls, path, path=root)
    path = Path(text)
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        raise ConfigError(root, f"unknown {root} preset {text!r}; expected one of "
                          f"{', '.join(presets)} or a YAML file")
    return load_yaml(cls, path, path=root)


def dump_yaml(obj, file=None, *, root: str | None = None) -> str:
    """YAML text of ``obj`` (optionally under a ``root`` key); written to ``file`` if given."""
    data = to_dict(obj)
    if root:
        data = {root: data}
    text = yaml.safe_dump(data, sort_keys=False)
    if file is not None:
        Path(file).write_text(text)
    return text


def describe(cls) -> list[tuple[str, str, Any]]:
    """``(name, description, default)`` of each field of a parameter class, for docs and --help."""
    return [(f.name, f.metadata.get("doc", ""),
             None if f.default is attrs.NOTHING else f.default) for f in attrs.fields(cls)]
