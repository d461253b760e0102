"""README parameter tables generated from the parameter source, so no table can drift from it.

A README embeds a table between ``<!-- params:SECTION ... -->`` and ``<!-- /params -->``; each
SECTION is a schema section or key (``identity``, ``perception.roi``, ``frame_id``), whose leaves
become rows (key, type, default, meaning from the bundled schema of `rt_reid.config`), or
``wearables`` (the wearable ingest's `IngestTiming`). ``python -m rt_reid.params_doc`` rewrites
every table; ``--check`` only reports the READMEs whose tables differ (tests run it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rt_reid.config import schema, schema_node
from rt_reid.wearables.ingest import DOC, IngestTiming

ROOT = Path(__file__).resolve().parents[1]
READMES = (
    "rt_reid/README.md",
    "rt_reid/runtime/perception/README.md",
    "rt_reid/wearables/README.md",
    "nodes/README.md",
)
WEARABLES = "wearables"
BLOCK = re.compile(
    r"(<!-- params:(?P<sections>[^>]*?) -->\n)(?P<table>.*?)(<!-- /params -->)", re.S
)
HEADER = "| key | type | default | meaning |\n|---|---|---|---|\n"


def schema_leaves(
    node: dict[str, Any], key: str, required: bool
) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(dotted key, schema node, required) of every parameter at or below `key`."""
    if node.get("type") == "object" and "properties" in node:
        names = set(node.get("required", ()))
        for name, child in node["properties"].items():
            yield from schema_leaves(child, f"{key}.{name}", name in names)
    else:
        yield key, node, required


def _type(node: dict[str, Any]) -> str:
    """The schema type in words, with the allowed values of an enum."""
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object":
        return "map"
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    return str(kind)


def _value(value: Any) -> str:
    """A default as it is written in the YAML file."""
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def _schema_rows(section: str) -> list[str]:
    """Table rows of one schema section or key."""
    root = schema()
    parent, _, name = section.rpartition(".")
    holder = schema_node(root, parent) if parent else root
    rows = []
    top = holder["properties"][name]
    for key, node, required in schema_leaves(top, section, name in holder.get("required", ())):
        if required:
            default = "required"
        elif "default" in node:
            default = _value(node["default"])
        else:
            default = "—"
        meaning = str(node.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(node)} | {default} | {meaning} |\n")
    return rows


def _wearable_rows() -> list[str]:
    """Table rows of the wearable ingest timing."""
    return [
        f"| `{item.name}` | number | {_value(item.default)} | {item.metadata[DOC]} |\n"
        for item in dataclasses.fields(IngestTiming)
    ]


def table(sections: str) -> str:
    """The Markdown table of the space-separated `sections` of a marker."""
    rows = [
        row
        for section in sections.split()
        for row in (_wearable_rows() if section == WEARABLES else _schema_rows(section))
    ]
    return HEADER + "".join(rows)


def render(text: str) -> str:
    """`text` with every marked table regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + table(m.group("sections")) + m.group(4), text)


def stale(root: Path = ROOT) -> list[str]:
    """The READMEs (relative paths) whose tables differ from the generated ones."""
    return [name for name in READMES if render(text := (root / name).read_text("utf-8")) != text]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the tables, or with --check exit 1 listing the READMEs that are out of date."""
    parser = argparse.ArgumentParser(prog="python -m rt_reid.params_doc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale tables, change nothing")
    args = parser.parse_args(argv)
    out_of_date = stale()
    if args.check:
        for name in out_of_date:
            print(f"{name}: parameter table differs; run python -m rt_reid.params_doc")
        return 1 if out_of_date else 0
    for name in out_of_date:
        path = ROOT / name
        path.write_text(render(path.read_text("utf-8")), encoding="utf-8")
        print(f"rewrote the parameter tables of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
