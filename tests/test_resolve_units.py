"""The Resolve integration's pure parts: rates, capabilities, host context, the bridge's files."""

from __future__ import annotations

import ast
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay_resolve import capabilities as caps
from framerelay_resolve import placement, rates
from framerelay_resolve.errors import ClipRefused
from framerelay_resolve.vendor.framerelay_client import resolve_bridge as rb
from tests.fake_resolve import PROFILES, FakeResolve
from tests.fake_resolve.lua_host import lua_binary

PLUGIN = Path(placement.__file__).parent
NTSC_24, NTSC_30 = Fraction(24000, 1001), Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("value", "rate"),
    [("23.976", NTSC_24), (23.976, NTSC_24), ("24", 24), (25.0, 25), ("29.97 DF", NTSC_30),
     ("59.94", Fraction(60000, 1001)), ("30000/1001", NTSC_30)],
)  # fmt: skip
def test_resolve_rates_are_exact(value, rate):
    assert rates.parse_rate(value) == rate


def test_an_unreadable_rate_is_refused_with_a_hint():
    with pytest.raises(ClipRefused, match="cannot read") as error:
        rates.parse_rate("fast")
    assert error.value.hint


@pytest.mark.parametrize(
    ("record", "media", "timeline", "source"),
    [
        (48, Fraction(24), Fraction(24), 48),
        (20, NTSC_24, Fraction(24), 20),  # floor(20 * 1.001) = 20
        (1001, NTSC_24, Fraction(24), 1000),  # 1000 * 1.001 = 1001 exactly
        (1000, Fraction(24), NTSC_24, 1001),  # floor(1001 / 1.001) = 1000
        (20, Fraction(30), Fraction(24), 25),
        (20, Fraction(24), Fraction(30), 16),  # floor(16 * 1.25) = 20
    ],
)
def test_source_frames_cover_the_record_span_exactly(record, media, timeline, source):
    assert rates.source_frames_for(record, media, timeline) == source
    assert rates.placed_duration(source, media, timeline) == record


@pytest.mark.parametrize(
    ("media", "timeline", "playheads", "indices"),
    [
        (Fraction(24), Fraction(24), (90, 100, 101, 147, 200), (0, 0, 1, 47, 47)),
        # 30 fps media on a 24 fps timeline: record frame 8 shows source frame 10 (8 * 1.25)
        (Fraction(30), Fraction(24), (100, 108, 137, 200), (0, 10, 46, 59)),
    ],
)
def test_the_playhead_names_the_source_frame_to_edit(media, timeline, playheads, indices):
    count = rates.source_frames_for(48, media, timeline)
    record = placement.SendRecord(
        "p", "pid", "t", "tid", "item", "A001", 100, 48, 1, timeline, False, media, 7, count, ""
    )
    plan = placement.SendPlan("/clips/a.mov", 7, 7 + count, media, record, "A001")
    assert tuple(plan.index_at(p) for p in playheads) == indices


def test_a_record_span_no_whole_source_count_fits_is_refused():
    # 23.976 media on a 24 fps timeline: 999 source frames give 999 record frames, 1000 give
    # 1001; nothing gives 1000, so a 1000-frame clip would land one frame short or long.
    assert rates.placed_duration(999, NTSC_24, Fraction(24)) == 999
    assert rates.placed_duration(1000, NTSC_24, Fraction(24)) == 1001
    with pytest.raises(ClipRefused, match="one frame short or long") as error:
        rates.source_frames_for(1000, NTSC_24, Fraction(24))
    assert "Clip Attributes" in error.value.hint


def test_drop_frame_timeline_timecode():
    assert rates.is_drop_frame("29.97 DF") and rates.is_drop_frame("29.97", "1")
    assert not rates.is_drop_frame("29.97", "0") and not rates.is_drop_frame("24")
    assert rates.timeline_frame("01:00:00;00", NTSC_30, True) == 107892
    assert rates.timeline_frame("01:01:00;02", NTSC_30, True) == 107892 + 1800
    # Written with ":" but the timeline counts drop-frame: still drop-frame.
    assert rates.timeline_frame("01:01:00:02", NTSC_30, True) == 107892 + 1800
    assert rates.timeline_frame("01:01:00:02", NTSC_30, False) == 108000 + 1802
    assert rates.timeline_timecode(107892 + 1800, NTSC_30, True) == "01:01:00;02"


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_capabilities_from_dir_agree_with_the_version(name):
    profile = PROFILES[name]
    resolve = FakeResolve(profile)
    timeline = resolve.project.add_timeline()
    probed = caps.Capabilities.probe(resolve, timeline)
    by_version = caps.Capabilities.from_version(profile.product, profile.version)
    assert probed == by_version
    assert probed.selection == (profile.short >= (21, 0, 4))
    assert probed.insert_track == (profile.short >= (19, 0, 0))
    assert probed.studio == profile.studio
    assert probed.windows == (profile.studio or profile.short < (19, 1, 0))
    assert probed.python_menu == profile.python_menu
    assert probed.external == profile.external_scripting
    assert resolve.phantom_calls == []


def test_a_timeline_without_the_call_has_no_selection_whatever_the_version():
    resolve = FakeResolve("21.0.4-studio")
    timeline = resolve.project.add_timeline()
    assert caps.Capabilities.probe(resolve, timeline).selection

    class Older:  # a build that does not list it
        def __dir__(self):
            return [n for n in dir(timeline) if n != "GetSelectedClips"]

    assert not caps.Capabilities.probe(resolve, Older()).selection


def test_the_host_context_round_trips_as_strings_within_the_daemon_limits():
    record = placement.SendRecord(
        project="Film", project_id="p1", timeline="Cut 3", timeline_id="t1", item_id="i1",
        clip="A001.mov", record_frame=86410, record_duration=48, track=2,
        timeline_fps=NTSC_30, drop_frame=True, media_fps=NTSC_24, source_in=7,
        source_frames=40, record_timecode="00:48:03;12",
    )  # fmt: skip
    context = record.to_context()
    assert all(isinstance(v, str) for v in context.values()) and len(context) <= 64
    assert context["host"] == "resolve" and context["timeline_fps"] == "30000/1001"
    assert placement.SendRecord.from_context(json.loads(json.dumps(context))) == record
    assert placement.SendRecord.from_context({**context, "host": "blender"}) is None
    assert placement.SendRecord.from_context({"host": "resolve"}) is None


PREFS = r"""
-- Fusion writes its preferences as one Lua table.
{
	Locked = false,
	Global = {
		Paths = {
			Map = {
				["Scripts:"] = "UserPaths:Scripts;Fusion:Scripts",
				["Macros:"] = 'UserPaths:Macros',
			},
		},
		Main = { LastFile = "C:\\Comps\\\"q\" \65\066\n", Count = -3, Scale = 1.5e-1, Hex = 0x1F },
		Recent = { "a.comp", "b.comp"; [[c
.comp]] },
		Layout = ordered() { Left = { Width = 320 } },
		Tool = Input { Value = 0.5, },
		--[[ a block
		comment ]]
		Framerelay = { Bridge = { State = "running", Response = "7b7d" } },
	},
	[1] = true,
}
"""


def test_fusion_prefs_are_parsed_as_lua_tables():
    prefs = rb.parse_prefs(PREFS)
    assert prefs["Locked"] is False and prefs[1] is True
    assert prefs["Global"]["Paths"]["Map"] == {
        "Scripts:": "UserPaths:Scripts;Fusion:Scripts",
        "Macros:": "UserPaths:Macros",
    }
    main = prefs["Global"]["Main"]
    assert main == {"LastFile": 'C:\\Comps\\"q" AB\n', "Count": -3, "Scale": 0.15, "Hex": 31}
    assert prefs["Global"]["Recent"] == ["a.comp", "b.comp", "c\n.comp"]
    assert prefs["Global"]["Layout"] == {"Left": {"Width": 320}}
    assert prefs["Global"]["Tool"] == {"Value": 0.5}
    assert rb.prefs_get(prefs, "Global.Framerelay.Bridge.State") == "running"
    assert rb.prefs_get(prefs, "Global.Nothing.Here") is None


@pytest.mark.parametrize("text", ["{", '{ A = "x }', "{ A = }", "{ A = 1 } x", ""])
def test_a_broken_prefs_file_is_a_syntax_error(text):
    with pytest.raises(rb.PrefsSyntaxError):
        rb.parse_prefs(text)


def test_a_half_written_prefs_file_reads_as_no_answer(tmp_path):
    path = tmp_path / "Fusion.prefs"
    path.write_text(PREFS[: len(PREFS) // 2])
    assert rb.read_bridge_prefs(path) == {}
    path.write_text(PREFS)
    assert rb.read_bridge_prefs(path)["State"] == "running"
    assert rb.decode_response("7b7d") is None  # JSON without an id
    assert rb.decode_response("7b226964223a2278227d") == {"id": "x"}
    assert rb.decode_response("zz") is None


def test_lua_literals_load_back_exactly_in_lua():
    value = {
        "path": 'C:\\Clips\\"Take" 1\n/été/日本.mov',
        "numbers": [0, -1, 86400, 2.5],
        "flags": {"yes": True, "no": False},
        "nested": {"key": [{"FilePath": "/a/frame_%06d.png", "StartIndex": 1}]},
    }
    program = (
        "local t = assert(loadstring(io.read('*a')))()\n"
        "io.write(t.path, '|', #t.numbers, '|', t.numbers[3], '|', t.numbers[4], '|',\n"
        "  tostring(t.flags.yes), tostring(t.flags.no), '|', t.nested.key[1].FilePath)"
    )
    out = subprocess.run(
        [lua_binary(), "-e", program], input=("return " + rb.lua_literal(value)).encode(),
        capture_output=True, check=True,
    ).stdout.decode("utf-8")  # fmt: skip
    assert out == value["path"] + "|4|86400|2.5|truefalse|/a/frame_%06d.png"
    assert rb.lua_literal(None) == "nil"
    with pytest.raises(TypeError):
        rb.lua_literal(object())


def test_plugin_modules_keep_to_python_3_7():
    """Resolve up to 21.0 runs the Python 3 the user installed: no newer syntax, and annotations
    that are never evaluated."""
    for path in sorted(PLUGIN.glob("*.py")):
        source = path.read_text()
        tree = ast.parse(source, feature_version=(3, 7))
        annotated = any(
            isinstance(node, ast.AnnAssign) or getattr(node, "returns", None) is not None
            for node in ast.walk(tree)
        )
        if annotated:
            assert "from __future__ import annotations" in source, path.name


def test_the_bridge_needs_nothing_the_sandbox_removes():
    source = (PLUGIN / "lua" / "framerelay_bridge.lua").read_text()
    code = "\n".join(line.split("--")[0] for line in source.splitlines())
    for name in ("io.", "ffi", "require", "package.", "os.execute", "bmd.readdir", "dofile"):
        assert name not in code, name
    assert "fusion:Execute" not in code  # never a resident loop through Fusion's executor
