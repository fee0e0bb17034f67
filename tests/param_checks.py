"""What holds the copies of the parameter table to it: the proto's EditParams and the client
package's generated list. Functions, not tests, so that tests/test_parameters.py can also run them
against a copy of the package with a parameter added (the how-to's demonstration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

JSON_TYPES = {"uint32": int, "double": float, "bool": bool}


def proto_type(field: Any) -> str:
    from google.protobuf.descriptor import FieldDescriptor

    names = {
        FieldDescriptor.TYPE_UINT32: "uint32",
        FieldDescriptor.TYPE_DOUBLE: "double",
        FieldDescriptor.TYPE_BOOL: "bool",
        FieldDescriptor.TYPE_ENUM: "enum",
    }
    return names.get(field.type, f"type {field.type}")


def proto_problems() -> list[str]:
    """Where specs.proto's EditParams and the table's job parameters differ, field by field."""
    from framerelay.engine.params import job_params
    from framerelay.engine.presets import PRESET_NAMES
    from framerelay.proto.v1 import specs_pb2

    fields = {f.name: f for f in specs_pb2.EditParams.DESCRIPTOR.fields}
    rows = {row.name: row for row in job_params()}
    problems = [
        f"{name}: a job parameter of the table has no EditParams field"
        for name in rows
        if name not in fields
    ]
    problems += [
        f"{name}: EditParams has a field the table does not declare"
        for name in fields
        if name not in rows
    ]
    for name in rows.keys() & fields.keys():
        row, field = rows[name], fields[name]
        kind = proto_type(field)
        if row.choices:
            values = [v.name for v in field.enum_type.values] if kind == "enum" else []
            wanted = ["PRESET_UNSPECIFIED", *(f"PRESET_{c.upper()}" for c in PRESET_NAMES)]
            if sorted(values) != sorted(wanted):
                problems.append(f"{name}: the enum holds {values}, the table {wanted}")
            continue
        if JSON_TYPES.get(kind) is not row.kind:
            problems.append(f"{name}: EditParams says {kind}, the table {row.kind.__name__}")
        if not field.has_presence:
            problems.append(f"{name}: declare it `optional` (absent: the engine's default)")
    return problems


def client_problems() -> list[str]:
    """Where the client package's EditParams list differs from the table's job parameters."""
    from framerelay.engine.params import job_params
    from framerelay_client.edit_params import PARAMS

    wanted = {row.name: row.kind for row in job_params() if row.name != "preset"}
    differing = sorted(n for n in PARAMS.keys() | wanted.keys() if PARAMS.get(n) != wanted.get(n))
    return [
        f"{name}: framerelay_client.edit_params says {PARAMS.get(name)}, the table "
        f"{wanted.get(name)} (run `python protos/generate.py`, then `python scripts/vendor-client`)"
        for name in differing
    ]


DOCS = "docs/parameters.md"
BEGIN, END = "<!-- parameter table: python tests/param_checks.py -->", "<!-- end of table -->"


def docs_table() -> str:
    """The table of docs/parameters.md, as the engine's table says it."""
    from framerelay.engine.params import PARAMS

    lines = [
        "| name | flag | type | default | range | keys the cache | set by | what it does |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in PARAMS:
        default = "none" if row.default is None else f"{row.default}".lower()
        flag = (
            ", ".join(f"`{f}`" for f in (row.cli_flag, *row.aliases))
            if row.scope != "internal"
            else ""
        )
        lines.append(
            f"| `{row.name}` | {flag} | {row.kind.__name__} | {default} | {row.range_text} | "
            f"{'yes' if row.keys_cache else 'no'} | {row.scope} | {row.help} |"
        )
    return "\n".join([BEGIN, *lines, END])


def docs_problems(root: Path) -> list[str]:
    text = (root / DOCS).read_text()
    if docs_table() in text:
        return []
    return [f"{DOCS}: the parameter table is stale; run `python tests/param_checks.py`"]


def write_docs(root: Path) -> None:
    path = root / DOCS
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + docs_table() + text[end:])


if __name__ == "__main__":
    import sys

    repo = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(repo / "daemon")]
    write_docs(repo)
