"""JobSpec: validation, the proto round trip, output planning and the engine request it becomes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.errors import (
    EditUnreadableError,
    InvalidSpecError,
    SourceUnreadableError,
)
from framerelay.jobs.engine_executor import edit_request_for
from framerelay.jobs.executor import Execution
from framerelay.jobs.spec import FrameRange, JobSpec, ParamOverrides, plan_outputs
from framerelay.proto.v1 import specs_pb2
from framerelay.service.convert import spec_from_proto, spec_to_proto
from tests.daemon_harness import make_media


@pytest.fixture
def media(tmp_path) -> tuple[Path, Path]:
    return make_media(tmp_path / "media")


def full_proto(source: Path, edited: Path) -> specs_pb2.JobSpec:
    return specs_pb2.JobSpec(
        request_id="req-1",
        label="shot 10",
        source_path=str(source),
        frame_range=specs_pb2.FrameRange(in_frame=10, out_frame=58),
        source_fps=specs_pb2.Rational(num=24000, den=1001),
        edited_frame_paths=[str(edited), str(edited)],
        mask_path=str(edited),
        params=specs_pb2.EditParams(
            preset=specs_pb2.PRESET_STYLE, height=320, width=512, steps=12, seed=7, beta1=0.25
        ),
        output=specs_pb2.OutputSpec(format=specs_pb2.OUTPUT_FORMAT_PNG, folder="/renders"),
        host_context={"record_frame": "86400", "track": "V3"},
        model="/models/svd",
    )


def test_the_proto_round_trip_keeps_every_field(media):
    message = full_proto(*media)
    spec = spec_from_proto(message)
    assert spec.frame_range == FrameRange(10, 58) and spec.source_fps == Fraction(24000, 1001)
    assert spec.preset == "style" and spec.output_format == "png"
    assert spec.params == ParamOverrides(height=320, width=512, steps=12, seed=7, beta1=0.25)
    assert spec_to_proto(spec) == message
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_unset_parameters_stay_engine_defaults(media):
    spec = spec_from_proto(specs_pb2.JobSpec(source_path=str(media[0])))
    params = spec.engine_params()
    assert spec.preset == "auto" and spec.output_format == "mov"
    assert (params.height, params.width, params.steps) == (576, 1024, 25)
    assert params.matching.enabled


def test_a_valid_spec_passes(media):
    spec = spec_from_proto(full_proto(*media))
    assert spec.validate() is spec


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda m, t: setattr(m, "source_path", "clip.mov"), InvalidSpecError, "absolute"),
        (lambda m, t: setattr(m, "source_path", ""), InvalidSpecError, "empty"),
        (
            lambda m, t: setattr(m, "source_path", str(t)),
            SourceUnreadableError,
            "no numbered PNG, TIFF, EXR or DPX frames",  # a folder is read as an image sequence
        ),
        (lambda m, t: m.ClearField("edited_frame_paths"), InvalidSpecError, "no edited frame"),
        (
            lambda m, t: m.edited_frame_paths.append(str(t / "gone.png")),
            EditUnreadableError,
            "gone.png",
        ),
        (lambda m, t: setattr(m, "mask_path", str(t / "m.png")), EditUnreadableError, "mask"),
        (lambda m, t: m.ClearField("source_fps"), InvalidSpecError, "needs the source fps"),
        (lambda m, t: setattr(m.frame_range, "out_frame", 11), InvalidSpecError, "two frames"),
        (lambda m, t: setattr(m.params, "height", 300), InvalidSpecError, "multiple of 64"),
        (lambda m, t: setattr(m.params, "beta1", 1.5), InvalidSpecError, "beta"),
        (lambda m, t: setattr(m.output, "folder", "renders"), InvalidSpecError, "absolute"),
    ],
    ids=[
        "relative-source",
        "empty-source",
        "source-is-folder",
        "no-edit",
        "missing-edit",
        "missing-mask",
        "range-without-fps",
        "one-frame",
        "height",
        "beta",
        "relative-output",
    ],
)
def test_bad_specs_name_the_problem(media, tmp_path, change, error, words):
    message = full_proto(*media)
    message.output.folder = str(tmp_path / "out")
    change(message, tmp_path)
    with pytest.raises(error) as caught:
        spec_from_proto(message).validate()
    assert words in caught.value.message and caught.value.hint


def test_a_zero_fps_is_refused_while_converting(media):
    message = full_proto(*media)
    message.source_fps.den = 0
    with pytest.raises(InvalidSpecError, match="positive fraction"):
        spec_from_proto(message)


def test_outputs_are_planned_per_edited_frame(media, tmp_path):
    spec = spec_from_proto(full_proto(*media))
    job_id = "0123456789abcdef" * 2
    assert plan_outputs(spec, job_id, tmp_path) == (
        Path("/renders/source_01234567_1"),
        Path("/renders/source_01234567_2"),
    )
    single = JobSpec(source=media[0], edited_frames=(media[1],), output_format="mp4")
    assert plan_outputs(single, job_id, tmp_path) == (tmp_path / job_id / "source_01234567.mp4",)
    dotted = JobSpec(
        source=Path("/a/A001.C002.mov"), edited_frames=(media[1],), output_format="png"
    )
    assert plan_outputs(dotted, job_id, tmp_path) == (tmp_path / job_id / "A001_C002_01234567",)


def test_a_job_becomes_an_engine_request(media, tmp_path):
    message = full_proto(*media)
    message.ClearField("mask_path")
    spec = spec_from_proto(message)
    outputs = (tmp_path / "a", tmp_path / "b")
    run = Execution("id", spec, outputs, tmp_path / "work", 1)
    request = edit_request_for(run, "default/model", "cpu", None)
    assert request.source == media[0] and request.outputs == outputs
    assert request.frame_range == (10, 58) and request.frame_rate == Fraction(24000, 1001)
    assert request.model == "/models/svd" and request.device == "cpu"
    assert request.params.steps == 12 and request.params.matching.preset == "style"
    assert request.params.matching.beta1 == 0.25
    message.model = ""
    default = edit_request_for(
        Execution("id", spec_from_proto(message), outputs, tmp_path, 1), "default/model", None, None
    )
    assert default.model == "default/model"


def test_the_engine_request_carries_the_mask(media, tmp_path):
    spec = spec_from_proto(full_proto(*media))
    request = edit_request_for(Execution("id", spec, (tmp_path,), tmp_path, 1), "m", None, None)
    assert spec.mask is not None and request.mask == spec.mask


def test_long_video_and_lora_parameters_reach_the_engine(media, tmp_path):
    message = full_proto(*media)
    message.params.lora_steps = 0
    message.params.lora_rank = 8
    message.params.overlap = 2
    message.params.skip_interval = False
    spec = spec_from_proto(message)
    assert spec_from_proto(spec_to_proto(spec)) == spec
    params = spec.engine_params()
    assert (params.lora.steps, params.lora.rank) == (0, 8)
    assert (params.overlap, params.skip_interval) == (2, False)
    message.ClearField("params")
    defaults = spec_from_proto(message).engine_params()
    assert (defaults.lora.steps, defaults.lora.rank, defaults.overlap) == (250, 32, 1)
    assert defaults.skip_interval is True


def test_footage_parameters_travel_from_proto_to_the_engine(media, tmp_path):
    """Sequence rate, input LUT, keep-unedited and audio (docs/footage-and-colour.md)."""
    message = full_proto(*media)
    lut = tmp_path / "log.cube"
    lut.write_text("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    message.sequence_fps.CopyFrom(specs_pb2.Rational(num=25, den=1))
    message.input_lut_path = str(lut)
    message.keep_unedited = False
    message.copy_audio = False
    spec = spec_from_proto(message)
    assert (spec.sequence_fps, spec.input_lut) == (Fraction(25), lut)
    assert not spec.keep_unedited and not spec.audio
    assert spec_to_proto(spec) == message
    assert JobSpec.from_dict(spec.to_dict()) == spec
    run = Execution("job-1", spec, (tmp_path / "out.mov",), tmp_path / "work", attempt=1)
    request = edit_request_for(run, "model", None, None)
    assert (request.sequence_fps, request.input_lut) == (Fraction(25), lut)
    assert not request.keep_unedited and not request.audio
    defaults = spec_from_proto(specs_pb2.JobSpec(source_path=str(media[0])))
    assert defaults.keep_unedited and defaults.audio and defaults.input_lut is None


def test_an_image_sequence_is_a_valid_source(media, tmp_path):
    from tests.media_factory import make_sequence, pattern_frames

    folder = make_sequence(tmp_path / "shot", list(pattern_frames(4, 64, 64)), "png")
    for source in (folder, folder / "frame.%04d.png", folder / "frame.####.png"):
        message = full_proto(source, media[1])
        message.ClearField("frame_range")
        assert spec_from_proto(message).validate().source == source
    (folder / "frame.0002.png").unlink()
    message = full_proto(folder, media[1])
    with pytest.raises(SourceUnreadableError, match="missing"):
        spec_from_proto(message).validate()
