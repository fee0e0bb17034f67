"""Builds the extension zip and validates it with Blender's own extension tool.

    python plugins/blender_vse/build.py [--output-dir dist] [--bpy-venv .venv-bpy53 ...]

The tool is `blender_ext.py`, which ships inside the bpy wheel (the same code as
`blender --command extension build/validate`). The zip is built with the newest bpy venv's tool
and validated with every bpy venv's tool found (4.2, 5.0, 5.3), so a manifest field one Blender
version rejects fails the build. Prints the zip's path on the last line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCE = HERE / "framerelay_vse"
REQUIRED = (
    "blender_manifest.toml",
    "__init__.py",
    "addon.py",
    "vendor/__init__.py",
    "vendor/framerelay_client/__init__.py",
    "vendor/framerelay_client/http.py",
)


def find_tools(venvs: list[Path]) -> list[tuple[Path, Path]]:
    """(python, blender_ext.py) of each bpy venv, newest Blender last."""
    found = []
    for venv in venvs:
        python = venv / "bin" / "python"
        tools = sorted(
            venv.glob(
                "lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
            )
        )
        if python.exists() and tools:
            found.append((python, tools[-1]))
    return sorted(found, key=lambda pair: version_key(pair[1]))


def version_key(tool: Path) -> tuple[int, ...]:
    # .../site-packages/bpy/<major.minor>/scripts/addons_core/bl_pkg/cli/blender_ext.py
    return tuple(int(part) for part in tool.parents[4].name.split("."))


def run(python: Path, tool: Path, *args: str) -> str:
    process = subprocess.run(
        [str(python), str(tool), *args], capture_output=True, text=True, check=False
    )
    if process.returncode != 0:
        sys.exit(
            f"blender_ext.py {args[0]} ({tool.parents[4].name}) failed:\n"
            f"{process.stdout}{process.stderr}"
        )
    return process.stdout


def check_contents(archive: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())
    missing = [name for name in REQUIRED if name not in names]
    stray = sorted(n for n in names if "__pycache__" in n or n.endswith(".pyc"))
    if missing or stray:
        sys.exit(f"{archive}: missing {missing}, stray {stray}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--bpy-venv",
        type=Path,
        action="append",
        help="a venv with bpy (default: every .venv-bpy* of the repository)",
    )
    options = parser.parse_args()
    venvs = options.bpy_venv or sorted(ROOT.glob(".venv-bpy*"))
    tools = find_tools(venvs)
    if not tools:
        sys.exit("no bpy venv with blender_ext.py found: run `bash scripts/setup-bpy-venvs` first.")
    manifest = tomllib.loads((SOURCE / "blender_manifest.toml").read_text())
    options.output_dir.mkdir(parents=True, exist_ok=True)
    archive = options.output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    archive.unlink(missing_ok=True)
    python, tool = tools[-1]
    run(python, tool, "build", "--source-dir", str(SOURCE), "--output-filepath", str(archive))
    for python, tool in tools:
        run(python, tool, "validate", str(archive))
        print(f"validated with Blender {tool.parents[4].name}'s blender_ext.py")
    check_contents(archive)
    print(archive)


if __name__ == "__main__":
    main()
