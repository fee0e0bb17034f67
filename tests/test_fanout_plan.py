"""Which jobs a pool fans out: engine/fanout.py plans the windows of one forward pass from the
range's first frame, so a job edited at another frame, or re-rendering a segment, runs all its
windows itself (its helpers get no task) rather than have helpers analyse windows it never uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from framerelay.engine import fanout, run
from framerelay.engine.params import EngineParams
from framerelay.engine.request import EditRequest, Segment

SOURCE, EDIT = Path("clip.mov"), Path("edit.png")


def request(**fields) -> EditRequest:
    edits = fields.pop("edited_frames", (EDIT,))
    return EditRequest(
        SOURCE, edits, tuple(Path(f"out{i}.mov") for i in range(len(edits))), **fields
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, True),
        ({"edit_frames": (0,)}, True),
        ({"edited_frames": (EDIT, EDIT), "edit_frames": (0, 0)}, True),
        ({"use_cache": False}, False),
        ({"edit_frames": (5,)}, False),
        ({"edited_frames": (EDIT, EDIT), "edit_frames": (0, 9)}, False),
        ({"segment": Segment(1, EngineParams())}, False),
    ],
    ids=["first-frame", "frame-0", "two-takes-at-0", "no-cache", "frame-5", "0-and-9", "segment"],
)
def test_only_a_forward_pass_from_the_first_frame_fans_out(fields, expected):
    assert run.fans_out(request(**fields)) is expected


def test_a_job_that_does_not_fan_out_plans_no_window_tasks(tmp_path):
    # planned before the source is opened: the clip need not even exist
    tasks = fanout.plan("job", request(edit_frames=(5,)), engine=None, folder=tmp_path)  # type: ignore[arg-type]
    assert tasks == [] and not any(tmp_path.iterdir())
