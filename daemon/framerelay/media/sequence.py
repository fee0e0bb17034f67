"""Image sequences as sources: a folder of numbered frames, or a pattern naming them.

A source is a sequence when it is a folder, or a path whose file name holds a printf field
(`shot_%04d.exr`, `%d`) or a run of `#` (`shot_####.dpx`, one `#` per digit). A folder must hold
one numbered run of PNG, TIFF, EXR or DPX files (`name0001.ext`). Frame numbers are those in the
file names; gaps are refused, so no frame is silently skipped or duplicated.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from framerelay.errors import InvalidSpecError, SourceUnreadableError

SEQUENCE_EXTENSIONS = (".png", ".tif", ".tiff", ".exr", ".dpx")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")
_NUMBERED = re.compile(r"^(?P<stem>.*?)(?P<digits>\d+)(?P<ext>\.[^.]+)$")


@dataclass(frozen=True)
class Sequence:
    folder: Path
    pattern: str  # display form, e.g. shot_####.exr
    files: tuple[Path, ...]  # in frame order
    numbers: tuple[int, ...]  # frame number of each file, consecutive

    @property
    def first_number(self) -> int:
        return self.numbers[0]

    def __len__(self) -> int:
        return len(self.files)


def is_sequence_path(path: str | Path) -> bool:
    """A folder, or a name with a frame-number field that is not itself a file (a clip may be
    called `take#2.mov`)."""
    path = Path(path)
    if path.is_dir():
        return True
    return not path.is_file() and bool(_PRINTF.search(path.name) or _HASHES.search(path.name))


def scan(path: str | Path) -> Sequence:
    """Find the frames of a folder or pattern; refuse empty, mixed or gapped sequences."""
    path = Path(path)
    if path.is_dir():
        return _from_folder(path)
    return _from_pattern(path)


def _from_pattern(path: Path) -> Sequence:
    folder, name = path.parent, path.name
    printf = _PRINTF.search(name)
    if printf:
        width = int(printf.group(2) or 0) if printf.group(1) else 0
        prefix, suffix = name[: printf.start()], name[printf.end() :]
    else:
        hashes = _HASHES.search(name)
        assert hashes is not None
        width = len(hashes.group(0)) if len(hashes.group(0)) > 1 else 0
        prefix, suffix = name[: hashes.start()], name[hashes.end() :]
    if not suffix.lower().endswith(SEQUENCE_EXTENSIONS):
        raise SourceUnreadableError(
            f"{name}: image sequences must be PNG, TIFF, EXR or DPX files",
            "Name the frames like shot_0001.exr and give shot_%04d.exr or shot_####.exr.",
        )
    if not folder.is_dir():
        raise SourceUnreadableError(
            f"the folder of the sequence {name} does not exist: {folder}",
            "Check the path; network drives must be mounted.",
        )
    digits = rf"(\d{{{width}}})" if width else r"(\d+)"
    matcher = re.compile(re.escape(prefix) + digits + re.escape(suffix) + "$")
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := matcher.match(p.name))]
    return _build(folder, prefix + "#" * max(width, 1) + suffix, found)


def _from_folder(folder: Path) -> Sequence:
    runs: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for entry in folder.iterdir():
        match = _NUMBERED.match(entry.name)
        if match is None or match.group("ext").lower() not in SEQUENCE_EXTENSIONS:
            continue
        if entry.name.startswith("."):
            continue
        key = (match.group("stem"), match.group("ext"))
        runs.setdefault(key, []).append((int(match.group("digits")), entry))
    if not runs:
        raise SourceUnreadableError(
            f"the folder {folder} holds no numbered PNG, TIFF, EXR or DPX frames",
            "Give a video file, or a folder of frames named like shot_0001.png.",
        )
    if len(runs) > 1:
        names = ", ".join(f"{stem}#{ext}" for stem, ext in sorted(runs))
        raise SourceUnreadableError(
            f"the folder {folder} holds several sequences ({names})",
            "Give a pattern instead of the folder, e.g. " + str(folder / "shot_%04d.exr") + ".",
        )
    (stem, ext), found = next(iter(runs.items()))
    return _build(folder, f"{stem}#{ext}", found)


def _build(folder: Path, pattern: str, found: list[tuple[int, Path]]) -> Sequence:
    if not found:
        raise SourceUnreadableError(
            f"no frames match {folder / pattern}", "Check the pattern and the folder."
        )
    found.sort()
    numbers = [n for n, _ in found]
    if len(set(numbers)) != len(numbers):
        raise SourceUnreadableError(
            f"{folder / pattern}: several files have the same frame number",
            "Give a pattern with the exact number of digits, e.g. shot_%04d.exr.",
        )
    gaps = [(a, b) for a, b in itertools.pairwise(numbers) if b != a + 1]
    if gaps:
        a, b = gaps[0]
        missing = f"{a + 1}" if b == a + 2 else f"{a + 1}-{b - 1}"
        raise SourceUnreadableError(
            f"{folder / pattern}: frame(s) {missing} are missing ({len(gaps)} gap(s))",
            "Render the missing frames, or move the frames of a part without gaps into a folder "
            "of their own (--in/--out cannot skip a gap: the whole run is checked).",
        )
    return Sequence(folder, pattern, tuple(p for _, p in found), tuple(numbers))


def frame_indices(sequence: Sequence, in_number: int | None, out_number: int | None) -> range:
    """Indices of frames [in_number, out_number) by their numbers in the file names."""
    first, last = sequence.numbers[0], sequence.numbers[-1]
    start = first if in_number is None else in_number
    stop = last + 1 if out_number is None else out_number
    if not (first <= start < stop <= last + 1):
        raise InvalidSpecError(
            f"frames [{start}, {stop}) are not in the sequence, which holds {first}-{last}",
            f"Give --in/--out between {first} and {last + 1} (out is exclusive).",
        )
    return range(start - first, stop - first)
