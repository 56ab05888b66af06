"""Strict YAML reading: ``yaml.safe_load`` semantics, but a duplicated key is an error.

Plain ``yaml.safe_load`` keeps the *last* of two equal keys in a mapping, so a config that sets
``optim:`` twice (or ``lr`` twice inside a section) silently loses the first block. Every YAML
file of the project (run configs, paper configs, paper tables, ``--set`` values) is read through
:func:`load_yaml`, which rejects such files and turns parser errors into one-line messages that
name the file, the line and the column, instead of a multi-line yaml traceback.

:class:`ConfigError` lives here (not in ``reid_core.config``, which imports this module) so that
both share one class without an import cycle; ``reid_core.config.ConfigError`` is the public name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(ValueError):
    """A config file or mapping that does not fit the schema (names the file and key).

    Re-exported as ``reid_core.config.ConfigError``; use that name outside ``reid_core.utils``.
    """


class YamlError(ConfigError):
    """A YAML text that cannot be read: a syntax error or a duplicated mapping key.

    ``detail`` is the message without the ``source`` prefix (for callers that wrap it into
    their own error, e.g. the paper-table loader).
    """

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail


class DuplicateKeyError(Exception):
    """A key given twice in one mapping; converted to :class:`YamlError`."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(key)
        self.key = key
        self.first = first
        self.again = again


def _check_unique_keys(root: yaml.Node | None) -> None:
    """Raise :class:`DuplicateKeyError` for the second occurrence of a scalar key in any
    mapping of the composed document (nodes only: nothing is constructed).

    Keys are compared as they are written with their resolved tag (``1`` and ``"1"`` differ,
    as they do for ``safe_load``). ``<<`` merge keys are skipped, so a key that overrides a
    merged-in one (the point of ``<<: *base``) is not a duplicate.
    """
    stack, seen_nodes = [root] if root is not None else [], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # an alias: already checked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_at: dict[tuple[str, str], yaml.Mark] = {}
            for key_node, value_node in node.value:
                stack += [key_node, value_node]
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                    continue
                key = (key_node.tag, key_node.value)
                if key in first_at:
                    raise DuplicateKeyError(key_node.value, first_at[key], key_node.start_mark)
                first_at[key] = key_node.start_mark
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def load_yaml(path_or_text: str | Path, source: str) -> Any:
    """Parse one YAML document like ``yaml.safe_load``; ``None`` for an empty document.

    Args:
        path_or_text: a :class:`~pathlib.Path` is read as UTF-8; a ``str`` is the YAML text.
        source: what the text is called in error messages (a file name, ``--set 'k=v'``).

    Raises:
        YamlError: (a :class:`ConfigError`) the text is not valid YAML or repeats a key; the
            one-line message names ``source``, the line(s) and the parser's problem.
    """
    if isinstance(path_or_text, Path):
        try:
            text = path_or_text.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        text = path_or_text
    try:
        # Two passes over a small text: the node tree (construction-free) for the duplicate
        # check, then plain yaml.safe_load for the values.
        _check_unique_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        return yaml.safe_load(text)
    except DuplicateKeyError as exc:
        raise YamlError(source, f"duplicate key {exc.key!r} at line {exc.again.line + 1} "
                                f"(first at line {exc.first.line + 1})") from None
    except yaml.YAMLError as exc:
        raise YamlError(source, describe_yaml_error(exc)) from None


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """One line for a parser error: ``invalid YAML at line L, column C: <problem>``.

    PyYAML's own ``str()`` spans several lines and quotes the source; the line, the column
    and the problem are what a user needs to find the mistake.
    """
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}"
        problem = exc.problem or "syntax error"
        if exc.context:
            ctx = exc.context_mark
            at = f" at line {ctx.line + 1}" if ctx is not None and ctx.line != mark.line else ""
            problem = f"{problem} ({exc.context}{at})"
        return f"{where}: {problem}"
    return "invalid YAML: " + " ".join(str(exc).split())
