"""YAML documents that remember where every value came from.

:func:`load_yaml` parses YAML text into plain Python data (``yaml.safe_load``
semantics) and, from the same composed node tree, a map from key paths
(``("traffic", 0, "load")``) to 1-based line numbers, so configuration errors
can name the file, the line and the key path. Duplicate mapping keys, which
PyYAML accepts silently, are rejected.

>>> doc = load_yaml("clock:\\n  tick: 100ms\\ntraffic:\\n  - {pattern: uniform}\\n")
>>> doc.data["clock"]["tick"], doc.line(("clock", "tick")), doc.line(("traffic", 0, "pattern"))
('100ms', 2, 4)
>>> format_path(("traffic", 0, "load"))
'traffic[0].load'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .errors import ScenarioError, format_path

__all__ = ["YamlDoc", "load_yaml", "read_file", "format_path"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlDoc:
    """Parsed YAML data plus the line of every key path.

    Attributes
    ----------
    data : object
        The document as plain Python data (None for an empty document).
    source : str
        File name (or ``<string>``) for messages.
    lines : dict
        Key path tuple -> 1-based line: for a mapping entry the line of its
        key, for a sequence item the line where the item starts.
    """

    data: object
    source: str = "<string>"
    lines: dict = field(default_factory=dict, repr=False, compare=False)

    def line(self, path: tuple) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: tuple, message: str) -> ScenarioError:
        """A :class:`ScenarioError` naming this file, the line of ``path`` and the path."""
        return ScenarioError(message, source=self.source, path=format_path(path) or None,
                             line=self.line(path))


def _key_text(node) -> object:
    """A mapping key as it will appear in the data (scalars only; else its text)."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return None


def _walk(node, path: tuple, lines: dict, constructed, source: str) -> None:
    """Record the line of every key path below ``node``; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        keys = list(constructed.keys()) if isinstance(constructed, dict) else []
        seen: dict[object, int] = {}
        for i, (knode, vnode) in enumerate(node.value):
            if knode.tag == "tag:yaml.org,2002:merge":
                continue            # ``<<: *anchor``: lines of merged keys stay unknown
            text = _key_text(knode)
            line = knode.start_mark.line + 1
            if text is not None and text in seen:
                raise ScenarioError(f"duplicate key {text!r} (first on line {seen[text]})",
                                    source=source, path=format_path(path) or None, line=line)
            if text is not None:
                seen[text] = line
            # the constructed key (e.g. int 1 for ``1:``) keeps the path usable
            key = _match_key(text, keys)
            if key is None:
                continue
            lines[path + (key,)] = line
            _walk(vnode, path + (key,), lines, constructed.get(key), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            sub = constructed[i] if isinstance(constructed, list) and i < len(constructed) else None
            _walk(item, path + (i,), lines, sub, source)


def _match_key(text, keys: list):
    for k in keys:
        if k == text or str(k) == text:
            return k
    return None


def load_yaml(text: str, source: str = "<string>") -> YamlDoc:
    """Parse YAML ``text`` into a :class:`YamlDoc`.

    Parameters
    ----------
    text : str
        One YAML document.
    source : str
        File name used in messages.

    Raises
    ------
    ScenarioError
        For malformed YAML (naming the file and the line of the problem),
        several documents in one file, or a duplicate key.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        if exc.context and exc.problem:
            ctx = exc.context
            if exc.context_mark is not None and exc.problem_mark is not None \
                    and exc.context_mark.line != exc.problem_mark.line:
                ctx += f" that starts on line {exc.context_mark.line + 1}"
            problem = f"{exc.problem} ({ctx})"
        raise ScenarioError(f"malformed YAML: {problem}", source=source,
                            line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"malformed YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    lines: dict = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, data, source)
    return YamlDoc(data, source, lines)


def read_file(path, kind: str) -> str:
    """The text of a ``kind`` file (``"scenario"``, ``"sweep"``), or one :class:`ScenarioError` line."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ScenarioError(f"{kind} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {kind} file {str(path)!r}: {exc}") from None
