"""`framerelay install-resolve [--uninstall]`: where the scripts go on Linux, macOS (Mac App Store
containers included) and Windows, and that what is installed runs on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from framerelay.cli import main
from framerelay_resolve import install
from framerelay_resolve.vendor.framerelay_client import resolve_bridge as rb
from tests.fake_resolve.lua_host import lua_binary

MAC_RESOLVE = ("Library", "Application Support", "Blackmagic Design", "DaVinci Resolve", "Fusion")


def test_the_fusion_folders_of_each_system(tmp_path):
    linux = rb.fusion_dirs("linux", home=tmp_path, env={})
    assert linux == [tmp_path / ".local" / "share" / "DaVinciResolve" / "Fusion"]

    windows = rb.fusion_dirs(
        "win32", home=tmp_path, env={"APPDATA": r"C:\Users\ed\AppData\Roaming"}
    )
    assert [str(p).replace("\\", "/") for p in windows] == [
        "C:/Users/ed/AppData/Roaming/Blackmagic Design/DaVinci Resolve/Support/Fusion"
    ]

    containers = tmp_path / "Library" / "Containers"
    for name in (
        "com.blackmagic-design.DaVinciResolveLite",
        "com.blackmagic-design.BlackmagicRawPlayer",  # not Resolve
        "com.blackmagic-design.DaVinciResolve.IOXPC",  # not Resolve
        "com.apple.Notes",
    ):
        (containers / name / "Data").mkdir(parents=True)
    lite = containers / "com.blackmagic-design.DaVinciResolveLite" / "Data"
    assert rb.fusion_dirs("darwin", home=tmp_path, env={}) == [
        tmp_path.joinpath(*MAC_RESOLVE),
        lite.joinpath(*MAC_RESOLVE),
    ]
    # Inside a container Resolve may scan Fusion's standalone tree instead: both get the scripts.
    (user, store) = install.targets(rb.fusion_dirs("darwin", home=tmp_path, env={}))
    assert user.scripts_dirs == [tmp_path.joinpath(*MAC_RESOLVE, "Scripts", "Utility")]
    assert store.scripts_dirs == [
        lite.joinpath(*MAC_RESOLVE, "Scripts", "Utility"),
        lite / "Library" / "Application Support" / "Fusion" / "Scripts" / "Utility",
    ]
    assert store.mailbox == lite.joinpath(*MAC_RESOLVE, "framerelay", "mailbox")
    assert rb.prefs_paths(store.fusion_dir) == [
        lite.joinpath(*MAC_RESOLVE, "Profiles", "Default", "Fusion.prefs"),
        lite
        / "Library"
        / "Application Support"
        / "Fusion"
        / "Profiles"
        / "Default"
        / "Fusion.prefs",
    ]


def test_install_and_uninstall_from_the_command_line(tmp_path, capsys):
    fusion = tmp_path / "Fusion"
    assert main(["install-resolve", "--fusion-dir", str(fusion)]) == 0
    out = capsys.readouterr().out
    utility = fusion / "Scripts" / "Utility"
    names = sorted(p.name for p in utility.iterdir())
    assert names == sorted([*install.MENU_SCRIPTS, install.BRIDGE_SCRIPT])
    assert str(utility / "framerelay Send Clip.py") in out and "Restart DaVinci Resolve" in out
    package = fusion / "framerelay" / "framerelay_resolve"
    assert (package / "vendor" / "framerelay_client" / "http.py").is_file()
    assert (package / "lua" / "framerelay_bridge.lua").is_file()
    assert not list(package.rglob("__pycache__"))
    assert (fusion / "framerelay" / "mailbox").is_dir()

    assert main(["install-resolve", "--fusion-dir", str(fusion)]) == 0  # again: replaced
    assert main(["install-resolve", "--uninstall", "--fusion-dir", str(fusion)]) == 0
    assert "Removed 5 item(s)." in capsys.readouterr().out
    assert list(utility.iterdir()) == [] and not (fusion / "framerelay").exists()
    assert main(["install-resolve", "--uninstall", "--fusion-dir", str(fusion)]) == 0
    assert "Nothing was installed." in capsys.readouterr().out


def test_install_finds_the_users_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["install-resolve"]) == 0
    fusion = tmp_path / ".local" / "share" / "DaVinciResolve" / "Fusion"
    assert (fusion / "Scripts" / "Utility" / install.BRIDGE_SCRIPT).is_file()
    assert main(["install-resolve", "--uninstall"]) == 0
    assert not (fusion / "framerelay").exists()


def test_an_installed_menu_script_runs_on_its_own(tmp_path):
    """The installed script imports the installed copy (with its vendored client) in a plain
    Python, from anywhere, with nothing of framerelay on the path."""
    fusion = tmp_path / "Fusion"
    install.install(install.targets([fusion]), log=lambda line: None)
    script = fusion / "Scripts" / "Utility" / "framerelay Place Takes.py"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", "exec(open(__import__('sys').argv[1]).read())", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "[framerelay] this script runs inside DaVinci Resolve." in result.stdout
    assert "Workspace > Scripts" in result.stdout


def test_the_installed_bridge_names_its_mailbox(tmp_path):
    fusion = tmp_path / "Fusion"
    (target,) = install.targets([fusion])
    install.install([target], log=lambda line: None)
    script = fusion / "Scripts" / "Utility" / install.BRIDGE_SCRIPT
    text = script.read_text()
    assert f"local MAILBOX = [==[{target.mailbox.as_posix()}]==]" in text
    assert "@VERSION@" not in text
    subprocess.run([lua_binary(), "-e", f"assert(loadfile([==[{script}]==]))"], check=True)


def test_a_mailbox_path_lua_cannot_hold_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot be written into Lua"):
        install.render_bridge(Path(tmp_path / "a]==]b"))


def test_uninstall_keeps_what_it_did_not_install(tmp_path, capsys):
    # `--fusion-dir ~` by mistake, where ~/framerelay is the user's own folder (a checkout of
    # framerelay, say): uninstall used to delete the whole folder.
    home = tmp_path / "home"
    own = home / "framerelay" / "README.md"
    own.parent.mkdir(parents=True)
    own.write_text("mine")
    assert main(["install-resolve", "--uninstall", "--fusion-dir", str(home)]) == 0
    assert own.read_text() == "mine"
    assert main(["install-resolve", "--fusion-dir", str(home)]) == 0
    assert main(["install-resolve", "--uninstall", "--fusion-dir", str(home)]) == 0
    assert own.read_text() == "mine"
    assert not (home / "framerelay" / "framerelay_resolve").exists()
    assert not (home / "framerelay" / "mailbox").exists()
    assert "holds files framerelay did not install" in capsys.readouterr().out
