"""framerelay_client.timecode: exact rates, frame conversions and SMPTE timecode."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from framerelay_client.timecode import (
    convert_frame_count,
    frames_per_day,
    frames_to_seconds,
    frames_to_timecode,
    is_drop_frame_rate,
    parse_fps,
    parse_rate,
    record_frame,
    rescale_frame,
    seconds_to_frame,
    source_frame,
    timecode_to_frames,
)

NTSC30 = Fraction(30000, 1001)
NTSC60 = Fraction(60000, 1001)


@pytest.mark.parametrize(
    ("given", "rate"),
    [
        ("30000/1001", NTSC30),
        ("29.97", NTSC30),
        (29.97, NTSC30),
        ("23.976", Fraction(24000, 1001)),
        (24 / 1.001, Fraction(24000, 1001)),  # Blender: fps / fps_base
        (30000 / 1001, NTSC30),
        ("59.94", NTSC60),
        ("119.88", Fraction(120000, 1001)),
        ("29.97 DF", NTSC30),  # Resolve's timelineFrameRate
        ("23.976 fps", Fraction(24000, 1001)),
        ("24", Fraction(24)),
        (25, Fraction(25)),
        (24.0, Fraction(24)),
        (12.5, Fraction(25, 2)),
        ("48/2", Fraction(24)),
        (Fraction(24000, 1001), Fraction(24000, 1001)),
    ],
)
def test_parse_fps_gives_the_exact_rate(given, rate):
    assert parse_fps(given) == rate


@pytest.mark.parametrize("bad", ["", "fast", "0", "-24", "24/0", 0, -1.0, float("nan"), True])
def test_parse_fps_refuses_what_is_not_a_rate(bad):
    with pytest.raises(ValueError):
        parse_fps(bad)


def test_parse_rate_reads_resolves_drop_frame_flag():
    assert parse_rate("29.97 DF") == (NTSC30, True)
    assert parse_rate("29.97 NDF") == (NTSC30, False)
    assert parse_rate("59.94") == (NTSC60, False)


def test_seconds_and_frames_are_exact():
    assert frames_to_seconds(3, NTSC30) == Fraction(3003, 30000)
    assert seconds_to_frame(Fraction(3003, 30000), NTSC30) == 3
    # 0.1001 s is frame 3 at 29.97, though the float 0.1001 is a hair below 3 frames' worth.
    assert Fraction(0.1001) * NTSC30 < 3
    assert seconds_to_frame(0.1001, NTSC30) == 3
    assert seconds_to_frame(0.12, NTSC30) == 3  # floor: the frame showing at that time
    assert seconds_to_frame(0.12, NTSC30, rounding="nearest") == 4
    assert seconds_to_frame(1, 24, rounding="exact") == 24
    with pytest.raises(ValueError, match="not a whole frame"):
        seconds_to_frame(0.01, 24, rounding="exact")


def test_frame_conversions_refuse_or_round_what_is_not_whole():
    assert convert_frame_count(1000, NTSC30, 30) == 1001  # the same duration
    assert convert_frame_count(48, 24, 48) == 96
    with pytest.raises(ValueError, match="not a whole frame"):
        convert_frame_count(10, 24, NTSC30)
    assert convert_frame_count(10, 24, NTSC30, rounding="floor") == 12
    assert convert_frame_count(10, 24, NTSC30, rounding="ceil") == 13
    assert rescale_frame(30, 30, 24) == 24
    with pytest.raises(ValueError):
        rescale_frame(31, 30, 24)
    assert rescale_frame(31, 30, 24, rounding="floor") == 24
    assert rescale_frame(31, 30, 24, rounding="nearest") == 25


def test_record_frames_place_source_frames_on_the_timeline():
    # Resolve: a clip trimmed to source frame 120 sits at 01:00:10:00 of a 24 fps timeline.
    record_in = timecode_to_frames("01:00:10:00", 24)
    assert record_frame(120, source_in=120, record_in=record_in) == 86640
    assert record_frame(168, source_in=120, record_in=record_in) == 86688
    assert source_frame(86688, source_in=120, record_in=record_in) == 168
    # A 48 fps clip shown by time on a 24 fps timeline: two source frames per record frame.
    assert record_frame(148, source_in=100, record_in=1000, source_fps=48, record_fps=24) == 1024
    assert source_frame(1024, source_in=100, record_in=1000, source_fps=48, record_fps=24) == 148
    with pytest.raises(ValueError):
        record_frame(149, source_in=100, record_in=1000, source_fps=48, record_fps=24)


@pytest.mark.parametrize(
    ("frame", "fps", "drop", "timecode"),
    [
        (17982, NTSC30, None, "00:10:00;00"),  # ten minutes of 29.97 drop-frame
        (1799, NTSC30, None, "00:00:59;29"),
        (1800, NTSC30, None, "00:01:00;02"),  # 00 and 01 are skipped at minute 1
        (3598, NTSC30, None, "00:02:00;02"),
        (107892, NTSC30, None, "01:00:00;00"),
        (108000, NTSC30, False, "01:00:00:00"),  # the same rate, non-drop
        (3599, NTSC60, None, "00:00:59;59"),
        (3600, NTSC60, None, "00:01:00;04"),  # 00 to 03 are skipped at 59.94
        (35964, NTSC60, None, "00:10:00;00"),
        (215784, NTSC60, None, "01:00:00;00"),
        (86400, 24, None, "01:00:00:00"),  # Resolve's usual timeline start
        (86400, Fraction(24000, 1001), None, "01:00:00:00"),  # 23.976 counts 24 a second
        (90000 + 24, 25, None, "01:00:00:24"),
        (2589408, NTSC30, None, "00:00:00;00"),  # a day wraps around
        (-1, 24, None, "23:59:59:23"),
    ],
)
def test_known_timecodes(frame, fps, drop, timecode):
    assert frames_to_timecode(frame, fps, drop) == timecode
    assert timecode_to_frames(timecode, fps) == frame % frames_per_day(fps, ";" in timecode)


def drop_frame_labels(base: int, dropped: int, minutes: int):
    """Every drop-frame label from 00:00:00;00 on, by the definition: a minute's first `dropped`
    frame numbers are skipped unless the minute is a multiple of ten."""
    for total_minutes in range(minutes):
        hh, mm = divmod(total_minutes, 60)
        for ss, ff in itertools.product(range(60), range(base)):
            if ss == 0 and ff < dropped and mm % 10:
                continue
            yield f"{hh:02d}:{mm:02d}:{ss:02d};{ff:02d}"


@pytest.mark.parametrize(("fps", "base", "dropped"), [(NTSC30, 30, 2), (NTSC60, 60, 4)])
def test_drop_frame_matches_its_definition_over_twenty_minutes(fps, base, dropped):
    labels = list(drop_frame_labels(base, dropped, 20))
    assert [frames_to_timecode(n, fps) for n in range(len(labels))] == labels
    assert [timecode_to_frames(label, fps) for label in labels] == list(range(len(labels)))


@pytest.mark.parametrize("fps", [NTSC30, NTSC60, Fraction(24000, 1001), 24, 25, 30, 50])
def test_timecode_round_trips_over_a_day(fps):
    """Every minute boundary of the day (where drop-frame acts), and a stride through the rest."""
    drop = is_drop_frame_rate(fps)
    day = frames_per_day(fps, drop)
    per_minute = parse_fps(fps) * 60
    boundaries = {round(m * per_minute) + d for m in range(24 * 60) for d in range(-5, 6)}
    frames = sorted({f % day for f in boundaries} | set(range(0, day, 997)) | {day - 1})
    labels = [frames_to_timecode(f, fps, drop) for f in frames]
    assert [timecode_to_frames(label, fps, drop) for label in labels] == frames
    assert len(set(labels)) == len(labels)
    assert labels == sorted(labels)  # labels count up through the day
    assert frames_to_timecode(day - 1, fps, drop).startswith("23:59:59")


@pytest.mark.parametrize(
    ("timecode", "fps"),
    [
        ("00:01:00;00", NTSC30),  # skipped in drop-frame
        ("00:01:00;01", NTSC30),
        ("00:01:00;03", NTSC60),
        ("00:00:00:30", 30),  # 30 frames a second: 00 to 29
        ("24:00:00:00", 24),
        ("00:60:00:00", 24),
        ("1:2:3", 24),
        ("00:00:00;00", 24),  # no drop-frame at 24
    ],
)
def test_invalid_timecodes_are_refused(timecode, fps):
    with pytest.raises(ValueError):
        timecode_to_frames(timecode, fps)


def test_timecode_needs_a_whole_or_ntsc_rate():
    assert not is_drop_frame_rate(Fraction(24000, 1001))
    assert is_drop_frame_rate("29.97") and is_drop_frame_rate(59.94)
    with pytest.raises(ValueError):
        frames_to_timecode(10, 12.5)
    with pytest.raises(ValueError):
        frames_to_timecode(10, 24, drop_frame=True)
