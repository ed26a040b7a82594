"""A YAML loader for files an administrator writes by hand: plain data only, and bounded.

PyYAML's SafeLoader already refuses to build Python objects, but two things still get through it:
aliases (a 1 KB file of nested aliases expands to billions of nodes, and whatever walks the result takes
seconds and gigabytes), and Python tags, refused only with a constructor error that does not say why.
`compose` refuses both with a clear message before anything walks the document:

- at most `MAX_ALIASES` aliases, and at most `MAX_NODES` nodes once every alias is expanded
  (computed on the node graph, without expanding it), and no alias inside itself;
- only the YAML core tags (str, int, float, bool, null, seq, map, and the merge key).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_ALIASES = 100
MAX_NODES = 100_000
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge", "timestamp")
)


class UnsafeYaml(yaml.MarkedYAMLError):
    """The document uses a construct a policy file may not (too many aliases, a Python tag...)."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise UnsafeYaml(
                    problem=f"more than {MAX_ALIASES} aliases (*name); write the values out instead",
                    problem_mark=event.start_mark,
                )
        tag = getattr(event, "tag", None)
        if tag and tag != "!" and tag not in _ALLOWED_TAGS:
            kind = "Python tags" if tag.startswith(_CORE + "python/") else "tags other than the YAML core ones"
            raise UnsafeYaml(
                problem=f"{kind} are not allowed here (found {tag.replace(_CORE, '!!')})",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded, without expanding it (memoised)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UnsafeYaml(problem="an alias refers to a node that contains it", problem_mark=node.start_mark)
        active.add(key)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        active.discard(key)
        sizes[key] = min(total, MAX_NODES + 1)  # capped: the sum cannot grow without bound either
        return sizes[key]

    return size(root)


def compose(text: str) -> tuple[yaml.Node | None, Any]:
    """(node graph, plain data) of a single-document YAML text; raises UnsafeYaml or yaml.YAMLError."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_size(node) > MAX_NODES:
            raise UnsafeYaml(
                problem=f"the document expands to more than {MAX_NODES} values (aliases nested in aliases)",
                problem_mark=node.start_mark,
            )
        return node, loader.construct_document(node)
    finally:
        loader.dispose()
