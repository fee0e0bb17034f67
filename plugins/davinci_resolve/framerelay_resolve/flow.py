"""The one flow of all three tiers: send the clip, follow its job, place every finished take.

`Flow(host, client)` takes a host (`live.LiveHost` or `bridged.BridgeHost`: the same operations)
and a daemon client (`vendor/framerelay_client`'s `Client`, or its `FakeDaemon`). Placing looks
at every job the daemon has for the open project (`host_context` says where each came from), so
a take finished while nobody watched is placed by the next run, once: a take already in the
"framerelay" bin has been placed (or was removed from the timeline by the user) and is left alone.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any, Callable

from . import BIN_NAME
from .capabilities import Capabilities
from .errors import ResolveError
from .placement import (
    Item,
    Placed,
    SendPlan,
    SendRecord,
    Timeline,
    check_imported,
    choose_source,
    plan_send,
    plan_take,
    take_key,
    verify,
)
from .vendor.framerelay_client import events, spec

FINISHED = "JOB_STATE_FINISHED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
ENDED = (FINISHED, FAILED, CANCELLED)

Log = Callable[[str], None]
POLL_SECONDS = 30.0


@dataclasses.dataclass
class Sent:
    job: dict[str, Any]
    plan: SendPlan
    how: str  # "selection" or "playhead"
    exported_path: str = ""  # round trips: the frame to edit

    @property
    def job_id(self) -> str:
        return str(self.job.get("id", ""))


@dataclasses.dataclass
class PlaceReport:
    placed: list[Placed] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, ResolveError]] = dataclasses.field(default_factory=list)  # job id
    waiting: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # job id, timeline
    pending: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # job id, state
    job_errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # job id, error

    def lines(self) -> list[str]:
        out = []
        for placed in self.placed:
            plan = placed.plan
            text = (
                f"Placed the take of {plan.label} on V{placed.track} at frame "
                f"{plan.record_frame} ({plan.duration} frames)."
            )
            if plan.notes:
                text += " Note: " + "; ".join(plan.notes) + "."
            if placed.mismatches:
                text += (
                    " Resolve read back a different placement: it "
                    + "; it ".join(placed.mismatches)
                    + "."
                )
            out.append(text)
        out += [f"Could not place job {job[:8]}: {error}" for job, error in self.failed]
        out += [
            f"The take of job {job[:8]} waits for its timeline '{timeline}': open it and run "
            "Place Takes."
            for job, timeline in self.waiting
        ]
        out += [f"Job {job[:8]} failed: {error}" for job, error in self.job_errors]
        if self.pending:
            out.append(
                "{} take(s) of this project are on their way ({}).".format(
                    len(self.pending), ", ".join(state for _, state in self.pending)
                )
            )
        return out


STATE_WORDS = {
    "JOB_STATE_QUEUED": "queued",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_AWAITING_EDIT": "awaiting the edit",
}


class Flow:
    def __init__(self, host: Any, client: Any, log: Log | None = None) -> None:
        self.host = host
        self.client = client
        self.log = log or (lambda line: None)

    # --- what is open ---

    def timeline(self) -> Timeline:
        timeline = Timeline.from_facts(self.host.describe())
        capabilities: Capabilities = self.host.capabilities()
        capabilities.require_placement()
        return dataclasses.replace(timeline, capabilities=capabilities)

    def source(self, timeline: Timeline) -> tuple[Item, str]:
        selection = self.host.selected()
        selected = None
        if selection.get("supported"):
            selected = [Item.from_facts(facts) for facts in selection.get("items") or []]
        video = [item for item in selected or [] if item.track is not None]
        at_playhead: list[Item] = []
        if not video:
            found = self.host.items_at(frame=timeline.playhead())
            at_playhead = [Item.from_facts(facts) for facts in found.get("items") or []]
        return choose_source(timeline, selected, at_playhead)

    # --- sending ---

    def send(
        self,
        image: str | None = None,
        mask: str | None = None,
        preset: str | None = None,
        output_format: str | None = None,
        output_folder: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Sent:
        """Submit the selected clip (or the one under the playhead): a round trip through the
        user's image editor, or with `image` as its edited first frame. `preset`,
        `output_format` and `output_folder` None: the daemon's job defaults."""
        timeline = self.timeline()
        item, how = self.source(timeline)
        plan = plan_send(timeline, item)
        body = spec.job_spec(
            plan.source,
            [image] if image else [],
            in_frame=plan.in_frame,
            out_frame=plan.out_frame,
            fps=plan.fps,
            mask=mask,
            preset=preset,
            params=params,
            output_format=output_format,
            output_folder=output_folder,
            host_context=plan.record.to_context(),
            request_id="resolve-" + uuid.uuid4().hex,
            label=plan.label,
            roundtrip=None if image else {"frame_index": 0},
        )
        reply = self.client.submit(body)
        sent = Sent(reply["job"], plan, how, str(reply.get("exportedPath") or ""))
        record = plan.record
        self.log(
            f"Sent '{record.clip}' ({record.record_timecode} on V{record.track}, source frames "
            f"{plan.in_frame}-{plan.out_frame - 1} of {plan.source}) as job {sent.job_id[:8]}."
        )
        if sent.exported_path:
            self.log(
                "Edit this frame in your image editor and save it in the same folder: "
                + sent.exported_path
            )
        return sent

    # --- following ---

    def follow(self, job_id: str, timeout: float | None = None) -> events.JobView:
        """Report the job's progress until it ends or `timeout` seconds pass (long polls, so the
        deadline holds however quiet the job is: a round trip may wait hours for its edit)."""
        view = events.JobView.from_job(self.client.get_job(job_id))
        said = self._progress_line(view)
        self.log(said)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not view.ended:
            wait = (
                POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - time.monotonic())
            )
            if wait <= 0:
                break
            reply = self.client.poll(job_id, view.last_seq, wait_seconds=wait)
            for event in reply.get("events") or []:
                view = events.reduce(view, event)
                line = self._progress_line(view)
                if line != said:
                    self.log(line)
                    said = line
            if reply.get("ended") and not view.ended:
                view = events.JobView.from_job(self.client.get_job(job_id))
        return view

    def _progress_line(self, view: events.JobView) -> str:
        if view.state == "JOB_STATE_RUNNING":
            return "Job {}: {:.0f}% ({})".format(
                view.job_id[:8], 10 * int(view.progress * 10), view.phase or "starting"
            )
        text = events.describe(view)
        if view.state == FAILED and view.error_hint:
            text += f" ({view.error_hint})"
        return f"Job {view.job_id[:8]}: {text}"

    # --- placing ---

    def place_finished(self) -> PlaceReport:
        """Place every finished take of the open project that is not in the bin yet."""
        report = PlaceReport()
        timeline = self.timeline()
        jobs = self.client.list_jobs().get("jobs") or []
        takes = []
        for job in jobs:
            record = SendRecord.from_context((job.get("spec") or {}).get("hostContext") or {})
            if record is None or not record.same_project(timeline):
                continue
            state = str(job.get("state", ""))
            job_id = str(job.get("id", ""))
            if state == FINISHED:
                png = ((job.get("spec") or {}).get("output") or {}).get(
                    "format"
                ) == "OUTPUT_FORMAT_PNG"
                for index, path in enumerate(job.get("outputPaths") or []):
                    takes.append((job, record, index, take_key(str(path), png)))
            elif state == FAILED and record.belongs_to(timeline):
                error = job.get("error") or {}
                report.job_errors.append((job_id, str(error.get("message", "failed"))))
            elif state in STATE_WORDS and record.belongs_to(timeline):
                report.pending.append((job_id, STATE_WORDS[state]))
        if takes:
            status = self.host.takes_status(keys=[key for *_, key in takes], bin=BIN_NAME)
            done = set(status.get("in_bin") or []) | set(status.get("on_timeline") or [])
            for job, record, index, key in takes:
                if key["path"] in done:
                    continue
                job_id = str(job.get("id", ""))
                if not record.belongs_to(timeline):
                    report.waiting.append((job_id, record.timeline))
                    continue
                try:
                    report.placed.append(self.place(job, index, record, timeline))
                except ResolveError as error:
                    report.failed.append((job_id, error))
                timeline = self.timeline()  # the track count changed
        for line in report.lines():
            self.log(line)
        return report

    def place(self, job: dict[str, Any], index: int, record: SendRecord, timeline: Timeline):
        found = self.host.find_item(id=record.item_id).get("item") if record.item_id else None
        source_now = Item.from_facts(found) if found else None
        plan = plan_take(job, index, record, timeline, source_now)
        imported = self.host.import_take(**plan.import_args())
        try:
            check_imported(plan, imported)
            placed = verify(plan, self.host.place_take(**plan.place_args()))
        except ResolveError:
            if not imported.get("existing"):
                self.host.discard_take(bin=plan.bin, key=plan.key)  # the next run tries again
            raise
        return placed
