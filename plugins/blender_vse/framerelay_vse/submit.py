"""Submitting the active strip: a job with an edited image (Propagate) or a round trip through
the user's image editor (Edit Current Frame). Main thread only."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import bpy

from . import compat, hostcontext, timeline, tracker
from .params import PARAMS, changed_params
from .placement import take_name
from .source import ClipProblem, SourcePlan, plan_source
from .vendor.framerelay_client import spec as client_spec

EXTENSION_VERSION = "0.1.0"
OUTPUT_SUBFOLDER = "framerelay"
TAKE_NUMBER = re.compile(r" take (\d+)$")


@dataclass(frozen=True)
class Submitted:
    record: Any
    plan: SourcePlan
    exported_path: str


def source_plan(context: Any) -> tuple[Any, SourcePlan]:
    """The sequencer's scene and the plan for its active strip; ClipProblem when unusable."""
    scene = compat.sequencer_scene(context)
    strip = compat.active_strip(scene)
    if strip is None:
        raise ClipProblem("No active strip.", "Click a movie strip in the sequencer first.")
    return scene, plan_source(timeline.strip_facts(strip, scene))


def existing_file(path: str, what: str) -> str:
    absolute = os.path.normpath(bpy.path.abspath(path))
    if not os.path.isfile(absolute):
        raise ClipProblem(f"the {what} {absolute} does not exist.", f"Choose the {what} again.")
    return absolute


def output_folder(settings: Any, plan: SourcePlan) -> str | None:
    if settings.output_location == "SOURCE":
        return os.path.join(os.path.dirname(plan.source_path), OUTPUT_SUBFOLDER)
    if settings.output_location == "FOLDER":
        if not settings.output_folder:
            raise ClipProblem(
                "no output folder is set.", "Choose one under Write To, or write next to the clip."
            )
        return os.path.normpath(bpy.path.abspath(settings.output_folder))
    return None


def next_take(scene: Any, source_name: str) -> int:
    """One more than any take of this strip in the list or in the timeline (the list can be
    cleared; the strips stay)."""
    numbers = [r.take for r in scene.framerelay.jobs if r.source_name == source_name]
    for strip in compat.top_level_strips(scene.sequence_editor):
        found = TAKE_NUMBER.search(strip.name)
        if found and strip.name == take_name(source_name, int(found.group(1))):
            numbers.append(int(found.group(1)))
    return 1 + max(numbers, default=0)


def scene_key(scene: Any) -> str:
    settings = scene.framerelay
    if not settings.scene_key:
        settings.scene_key = uuid.uuid4().hex
    return settings.scene_key


def build_spec(scene: Any, plan: SourcePlan, take: int, roundtrip: bool) -> dict:
    settings = scene.framerelay
    edited = () if roundtrip else (existing_file(settings.edited_image, "edited image"),)
    mask = existing_file(settings.mask_image, "mask image") if settings.mask_image else None
    context = hostcontext.build(
        plan,
        scene_key=scene_key(scene),
        scene_name=scene.name,
        blend_file=tracker.blend_path(),
        take=take,
        output_format=settings.output_format,
        version=f"{EXTENSION_VERSION} blender {compat.blender_version()}",
    )
    # Edit current frame: the playhead's frame (the clip's first when it is outside the strip)
    at = plan.index_at(scene.frame_current)
    session = {"frame_index": at, "sixteen_bit": settings.sixteen_bit}
    session["follow_saves"] = settings.follow_saves
    return client_spec.job_spec(
        plan.source_path,
        edited,
        in_frame=plan.in_frame,
        out_frame=plan.out_frame,
        fps=plan.media_rate,
        mask=mask,
        preset=settings.preset,
        params=changed_params({p.name: getattr(settings, p.name) for p in PARAMS}),
        output_format=settings.output_format,
        output_folder=output_folder(settings, plan),
        host_context=context,
        request_id=f"blender-{uuid.uuid4().hex}",
        label=f"Blender · {scene.name} · {take_name(plan.source_name, take)}",
        roundtrip=session if roundtrip else None,
        model=settings.model.strip(),
    )


def submit(context: Any, roundtrip: bool) -> Submitted:
    """Submits the active strip; raises ClipProblem or the client's errors."""
    scene, plan = source_plan(context)
    settings = scene.framerelay
    take = next_take(scene, plan.source_name)
    spec = build_spec(scene, plan, take, roundtrip)
    tracker.configure_connection()
    reply = tracker.SESSION.hub.connection.call(lambda client: client.submit(spec))
    job = reply["job"]
    insertion = hostcontext.parse(spec["hostContext"])
    record = tracker.add_record(settings, insertion, job)
    tracker.follow(job)
    return Submitted(record, plan, reply.get("exportedPath", ""))
