"""Runs one scenario inside a bpy venv (bpy module mode, headless) and writes what it saw.

    <bpy venv>/bin/python tests/blender/driver.py SCENARIO ARGS.json RESULT.json

The scenario is a function of `scenarios.py` called with the JSON arguments; RESULT.json gets
`{"ok": true, "facts": ...}` or `{"ok": false, "error": "<traceback>"}`. The main pytest
(tests/blender_support.py) starts this, then asserts on the facts.
"""

import json
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> None:
    name, args_path, result_path = sys.argv[1:4]
    sys.path[:0] = [str(HERE), str(ROOT / "plugins" / "blender_vse")]
    args = json.loads(Path(args_path).read_text())
    try:
        import scenarios

        result = {"ok": True, "facts": getattr(scenarios, name)(**args)}
    except BaseException:
        result = {"ok": False, "error": traceback.format_exc()}
    Path(result_path).write_text(json.dumps(result, indent=1, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    # Worker threads may still wait on a long poll, and bpy's own exit can take seconds: leave.
    os._exit(0)


if __name__ == "__main__":
    main()
