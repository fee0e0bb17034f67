"""Domain objects to protobuf messages and back: one function per direction."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from framerelay.engine.presets import AUTO, PRESET_NAMES, PresetChoice
from framerelay.errors import FramerelayError, InvalidSpecError
from framerelay.jobs import events
from framerelay.jobs.events import ErrorInfo, JobEvent
from framerelay.jobs.executor import ExecutorStatus
from framerelay.jobs.job import Job, JobState
from framerelay.jobs.spec import (
    DEFAULT_OUTPUT_FORMAT,
    OVERRIDABLE,
    EditSessionSpec,
    FrameRange,
    JobSpec,
    ParamOverrides,
)
from framerelay.proto.v1 import (
    daemon_pb2,
    errors_pb2,
    events_pb2,
    jobs_pb2,
    specs_pb2,
)
from framerelay.roundtrip.editor import DetectedEditor, EditorConfig
from framerelay.service.errors import code_to_proto
from framerelay.service.job_defaults import JobDefaults

PRESETS = {
    specs_pb2.PRESET_UNSPECIFIED: AUTO,  # with_defaults gives it the daemon's default first
    **{specs_pb2.Preset.Value(f"PRESET_{name.upper()}"): name for name in PRESET_NAMES},
}
OUTPUT_FORMATS = {
    specs_pb2.OUTPUT_FORMAT_UNSPECIFIED: DEFAULT_OUTPUT_FORMAT,
    specs_pb2.OUTPUT_FORMAT_MP4: "mp4",
    specs_pb2.OUTPUT_FORMAT_MOV: "mov",
    specs_pb2.OUTPUT_FORMAT_PNG: "png",
}
# EditParams' fields besides the preset: the table's job parameters (a test holds the proto to it).
PARAM_FIELDS = OVERRIDABLE
CANCEL_REASONS = {
    "dequeued": events_pb2.CANCEL_REASON_DEQUEUED,
    "interrupted": events_pb2.CANCEL_REASON_INTERRUPTED,
}
QUEUED_REASONS = {
    "submitted": events_pb2.QUEUED_REASON_SUBMITTED,
    "moved": events_pb2.QUEUED_REASON_MOVED,
    "recovered": events_pb2.QUEUED_REASON_RECOVERED,
    "edit_received": events_pb2.QUEUED_REASON_EDIT_RECEIVED,
    "follow_save": events_pb2.QUEUED_REASON_FOLLOW_SAVE,
    "paused": events_pb2.QUEUED_REASON_PAUSED,
}


def state_to_proto(state: JobState) -> jobs_pb2.JobState.ValueType:
    return jobs_pb2.JobState.Value(f"JOB_STATE_{state.value.upper()}")


def state_from_proto(value: jobs_pb2.JobState.ValueType) -> JobState:
    if value == jobs_pb2.JOB_STATE_UNSPECIFIED:
        raise InvalidSpecError("JOB_STATE_UNSPECIFIED is not a state to filter by.")
    if value not in jobs_pb2.JobState.values():
        raise InvalidSpecError(
            f"unknown job state value {value}.",
            f"Filter by one of {', '.join(jobs_pb2.JobState.keys()[1:])}.",
        )
    return JobState(jobs_pb2.JobState.Name(value).removeprefix("JOB_STATE_").lower())


def fps_from_proto(message: specs_pb2.Rational) -> Fraction:
    if message.den <= 0 or message.num <= 0:
        raise InvalidSpecError(
            f"the source fps must be a positive fraction, got {message.num}/{message.den}.",
            "Send the host's frame rate, e.g. 24000/1001 for 23.976.",
        )
    return Fraction(message.num, message.den)


def fps_to_proto(fps: Fraction) -> specs_pb2.Rational:
    return specs_pb2.Rational(num=fps.numerator, den=fps.denominator)


def spec_from_proto(message: specs_pb2.JobSpec) -> JobSpec:
    if message.params.preset not in PRESETS:
        raise InvalidSpecError(f"unknown preset value {message.params.preset}.")
    if message.output.format not in OUTPUT_FORMATS:
        raise InvalidSpecError(f"unknown output format value {message.output.format}.")
    params = message.params
    overrides = {name: getattr(params, name) for name in PARAM_FIELDS if params.HasField(name)}  # type: ignore[arg-type]
    frame_range = None
    if message.HasField("frame_range"):
        frame_range = FrameRange(message.frame_range.in_frame, message.frame_range.out_frame)
    return JobSpec(
        source=Path(message.source_path),
        edited_frames=tuple(Path(p) for p in message.edited_frame_paths),
        frame_range=frame_range,
        source_fps=fps_from_proto(message.source_fps) if message.HasField("source_fps") else None,
        mask=Path(message.mask_path) if message.mask_path else None,
        preset=PRESETS[params.preset],
        params=ParamOverrides(**overrides),
        output_format=OUTPUT_FORMATS[message.output.format],
        output_folder=Path(message.output.folder) if message.output.folder else None,
        overwrite=message.output.overwrite,
        host_context=dict(message.host_context),
        model=message.model,
        label=message.label,
        request_id=message.request_id,
        edit_session=edit_session_from_proto(message.edit_session)
        if message.HasField("edit_session")
        else None,
        sequence_fps=fps_from_proto(message.sequence_fps)
        if message.HasField("sequence_fps")
        else None,
        input_lut=Path(message.input_lut_path) if message.input_lut_path else None,
        keep_unedited=message.keep_unedited if message.HasField("keep_unedited") else True,
        audio=message.copy_audio if message.HasField("copy_audio") else True,
    )


def edit_session_from_proto(message: specs_pb2.EditSessionSpec) -> EditSessionSpec:
    return EditSessionSpec(
        frame_index=message.frame_index,
        sixteen_bit=message.sixteen_bit,
        open_editor=message.open_editor if message.HasField("open_editor") else None,
        follow_saves=message.follow_saves,
    )


def edit_session_to_proto(spec: EditSessionSpec) -> specs_pb2.EditSessionSpec:
    message = specs_pb2.EditSessionSpec(
        frame_index=spec.frame_index,
        sixteen_bit=spec.sixteen_bit,
        follow_saves=spec.follow_saves,
    )
    if spec.open_editor is not None:
        message.open_editor = spec.open_editor
    return message


def spec_to_proto(spec: JobSpec) -> specs_pb2.JobSpec:
    params = specs_pb2.EditParams(preset=specs_pb2.Preset.Value(f"PRESET_{spec.preset.upper()}"))
    for name in PARAM_FIELDS:
        value = getattr(spec.params, name)
        if value is not None:
            setattr(params, name, value)
    message = specs_pb2.JobSpec(
        request_id=spec.request_id,
        label=spec.label,
        source_path=str(spec.source),
        edited_frame_paths=[str(p) for p in spec.edited_frames],
        mask_path=str(spec.mask) if spec.mask else "",
        params=params,
        output=specs_pb2.OutputSpec(
            format=specs_pb2.OutputFormat.Value(f"OUTPUT_FORMAT_{spec.output_format.upper()}"),
            folder=str(spec.output_folder) if spec.output_folder else "",
            overwrite=spec.overwrite,
        ),
        host_context=spec.host_context,
        model=spec.model,
    )
    if spec.frame_range is not None:
        message.frame_range.in_frame = spec.frame_range.in_frame
        message.frame_range.out_frame = spec.frame_range.out_frame
    if spec.source_fps is not None:
        message.source_fps.CopyFrom(fps_to_proto(spec.source_fps))
    if spec.edit_session is not None:
        message.edit_session.CopyFrom(edit_session_to_proto(spec.edit_session))
    if spec.sequence_fps is not None:
        message.sequence_fps.CopyFrom(fps_to_proto(spec.sequence_fps))
    if spec.input_lut is not None:
        message.input_lut_path = str(spec.input_lut)
    if not spec.keep_unedited:
        message.keep_unedited = False
    if not spec.audio:
        message.copy_audio = False
    return message


def error_info_to_proto(error: ErrorInfo) -> errors_pb2.ErrorInfo:
    return errors_pb2.ErrorInfo(
        code=code_to_proto(error.code), message=error.message, hint=error.hint
    )


def progress_to_proto(progress: events.ProgressUpdate) -> events_pb2.Progress:
    message = events_pb2.Progress(
        phase=progress.phase,
        clip=progress.clip,
        clips=progress.clips,
        step=progress.step,
        total=progress.total,
        message=progress.message,
    )
    if progress.eta_seconds is not None:
        message.eta_seconds = progress.eta_seconds
    return message


def finished_to_proto(result: events.Finished) -> events_pb2.Finished:
    return events_pb2.Finished(
        output_paths=list(result.outputs),
        frame_count=result.frame_count,
        fps=fps_to_proto(result.fps),
        width=result.width,
        height=result.height,
        preset=result.preset,
        preset_choices=[preset_choice_to_proto(c) for c in result.preset_choices],
        seed=result.seed,
        phase_seconds=result.phase_seconds,
        windows=result.windows,
        cache_hits=result.cache_hits,
        lora_steps_run=result.lora_steps_run,
        warnings=list(result.warnings),
    )


def preset_choice_to_proto(choice: PresetChoice) -> events_pb2.PresetChoice:
    return events_pb2.PresetChoice(
        preset=choice.preset,
        chosen_by_auto=choice.chosen_by_auto,
        changed_fraction=choice.changed_fraction,
        structure_correlation=choice.structure_correlation,
        reason=choice.reason,
    )


def event_to_proto(event: JobEvent) -> events_pb2.JobEvent:
    message = events_pb2.JobEvent(job_id=event.job_id, seq=event.seq, cursor=event.cursor)
    message.time.FromNanoseconds(int(event.time * 1e9))
    match event.payload:
        case events.Queued(position=position, reason=reason):
            message.queued.position = position
            message.queued.reason = QUEUED_REASONS[reason]
        case events.Started(attempt=attempt):
            message.started.attempt = attempt
        case events.ProgressUpdate() as progress:
            message.progress.CopyFrom(progress_to_proto(progress))
        case events.Preview(png=png, width=width, height=height, phase=phase):
            message.preview.CopyFrom(
                events_pb2.Preview(png=png, width=width, height=height, phase=phase)
            )
        case events.Finished() as result:
            message.finished.CopyFrom(finished_to_proto(result))
        case events.Failed(error=error):
            message.failed.error.CopyFrom(error_info_to_proto(error))
        case events.Cancelled(reason=reason, error=error, phase=phase):
            message.cancelled.reason = CANCEL_REASONS[reason]
            message.cancelled.phase = phase
            message.cancelled.error.CopyFrom(error_info_to_proto(error))
        case events.EditUpdate() as update:
            message.edit.CopyFrom(edit_update_to_proto(update))
    return message


def edit_update_to_proto(update: events.EditUpdate) -> events_pb2.EditEvent:
    return events_pb2.EditEvent(
        kind=events_pb2.EditEventKind.Value(f"EDIT_EVENT_KIND_{update.kind.upper()}"),
        message=update.message,
        hint=update.hint,
        path=update.path,
        source=update.source,
        version=update.version,
        warnings=list(update.warnings),
        follow_job_id=update.follow_job_id,
        width=update.width,
        height=update.height,
        source_frame=update.source_frame,
    )


def edit_status_to_proto(job: Job) -> jobs_pb2.EditStatus:
    """Derived from the job's events: it watches until it ends or hands over to a follow job."""
    edit = job.edit
    assert edit is not None
    return jobs_pb2.EditStatus(
        exported_path=edit.exported_path,
        width=edit.width,
        height=edit.height,
        source_frame=edit.source_frame,
        version=edit.version,
        edited_path=edit.edited_path,
        watching=not job.state.ended and not edit.follow_job_id,
        follow_saves=bool(job.spec.edit_session and job.spec.edit_session.follow_saves),
    )


def job_to_proto(job: Job, position: int) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        id=job.id,
        spec=spec_to_proto(job.spec),
        state=state_to_proto(job.state),
        position=position,
        attempt=job.attempt,
        last_seq=job.last_seq,
        cancel_requested=job.cancel_requested,
        output_paths=list(job.outputs),
    )
    message.created_at.FromNanoseconds(int(job.created_at * 1e9))
    if job.started_at is not None:
        message.started_at.FromNanoseconds(int(job.started_at * 1e9))
    if job.ended_at is not None:
        message.ended_at.FromNanoseconds(int(job.ended_at * 1e9))
    if job.progress is not None:
        message.progress.CopyFrom(progress_to_proto(job.progress))
    if job.result is not None:
        message.result.CopyFrom(finished_to_proto(job.result))
    if job.error is not None:
        message.error.CopyFrom(error_info_to_proto(job.error))
    if job.edit is not None:
        message.edit.CopyFrom(edit_status_to_proto(job))
    return message


def status_to_proto(
    executor: ExecutorStatus,
    version: str,
    queue_length: int,
    running_job_id: str | None,
    uptime_seconds: float,
    pid: int,
    waiting_on: FramerelayError | None = None,
    queue_paused: bool = False,
) -> daemon_pb2.GetStatusResponse:
    return daemon_pb2.GetStatusResponse(
        waiting_on=error_info_to_proto(ErrorInfo.from_error(waiting_on)) if waiting_on else None,
        version=version,
        device=executor.device,
        model_loaded=executor.model_loaded,
        model=executor.model,
        vram_used_bytes=executor.vram_used_bytes,
        vram_total_bytes=executor.vram_total_bytes,
        queue_length=queue_length,
        running_job_id=running_job_id or "",
        uptime_seconds=uptime_seconds,
        pid=pid,
        queue_paused=queue_paused,
    )


def editor_config_to_proto(config: EditorConfig) -> daemon_pb2.EditorConfig:
    return daemon_pb2.EditorConfig(
        application=config.application or "",
        arguments=list(config.arguments),
        open_editor=config.open_editor,
        poll_saves=config.poll_saves,
    )


def detected_editor_to_proto(editor: DetectedEditor) -> daemon_pb2.DetectedEditor:
    return daemon_pb2.DetectedEditor(name=editor.name, label=editor.label, path=str(editor.path))


def editor_config_from_proto(message: daemon_pb2.EditorConfig) -> EditorConfig:
    return EditorConfig.from_dict(
        {
            "application": message.application,
            "arguments": list(message.arguments),
            "open_editor": message.open_editor if message.HasField("open_editor") else True,
            "poll_saves": message.poll_saves,
        }
    )


def preset_to_proto(preset: str) -> specs_pb2.Preset.ValueType:
    return specs_pb2.Preset.Value(f"PRESET_{preset.upper()}")


def output_format_to_proto(output_format: str) -> specs_pb2.OutputFormat.ValueType:
    return specs_pb2.OutputFormat.Value(f"OUTPUT_FORMAT_{output_format.upper()}")


def defaults_to_proto(defaults: JobDefaults) -> daemon_pb2.JobDefaults:
    return daemon_pb2.JobDefaults(
        preset=preset_to_proto(defaults.preset),
        output_format=output_format_to_proto(defaults.output_format),
        output_folder=str(defaults.output_folder or ""),
    )


def defaults_from_proto(message: daemon_pb2.JobDefaults) -> JobDefaults:
    if message.preset not in PRESETS:
        raise InvalidSpecError(f"unknown preset value {message.preset}.")
    if message.output_format not in OUTPUT_FORMATS:
        raise InvalidSpecError(f"unknown output format value {message.output_format}.")
    folder = message.output_folder
    return JobDefaults(
        preset=PRESETS[message.preset],
        output_format=OUTPUT_FORMATS[message.output_format],
        output_folder=Path(folder) if folder else None,
    ).validate()


def with_defaults(message: specs_pb2.JobSpec, defaults: JobDefaults) -> specs_pb2.JobSpec:
    """A copy of the spec whose unset preset, output format and folder take the defaults."""
    filled = specs_pb2.JobSpec()
    filled.CopyFrom(message)
    if filled.params.preset == specs_pb2.PRESET_UNSPECIFIED:
        filled.params.preset = preset_to_proto(defaults.preset)
    if filled.output.format == specs_pb2.OUTPUT_FORMAT_UNSPECIFIED:
        filled.output.format = output_format_to_proto(defaults.output_format)
    if not filled.output.folder and defaults.output_folder is not None:
        filled.output.folder = str(defaults.output_folder)
    return filled
