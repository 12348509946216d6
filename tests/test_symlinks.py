"""Folder uploads never follow a symlink out of the folder: ``log_asset``, ``log_model`` and
``Artifact.add``, embedded and against a real server process, all go through ``safe_walk``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tallymark
from tallymark import API, Artifact
from tallymark.store.paths import UnsafePath

from servers import ServerProcess

QUIET = {
    "log_code": False,
    "log_env": False,
    "log_git": False,
    "log_system_metrics": False,
    "capture_stdout": False,
}
SECRET = "do-not-upload-this"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("srv")) as srv:
        yield srv


@pytest.fixture(params=["embedded", "server"])
def where(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "tmhome"))
    monkeypatch.setenv("TALLYMARK_USER", "alice")
    if request.param == "server":
        monkeypatch.setenv("TALLYMARK_URL", request.getfixturevalue("server").url)
    else:
        monkeypatch.delenv("TALLYMARK_URL", raising=False)
    return request.param


def _folder(tmp_path: Path, link_target: Path | str, directory: bool = False) -> tuple[Path, Path]:
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "ok.txt").write_text("ok")
    link = folder / "leak"
    link.symlink_to(link_target, target_is_directory=directory)
    return folder, link


def _outside_file(tmp_path: Path) -> Path:
    outside = tmp_path / "elsewhere" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text(SECRET)
    return outside


def _assert_refused(exc: pytest.ExceptionInfo[UnsafePath], link: Path, target: Path | str) -> None:
    message = str(exc.value)
    assert str(link) in message, message
    assert str(Path(target).resolve()) in message and "outside the folder" in message, message


def _blobs_hold_no_secret(tmp_path: Path) -> None:
    for p in tmp_path.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.name != "secret.txt":
            assert SECRET.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("target", ["file", "dir", "proc"])
def test_log_asset_refuses_a_symlink_out_of_the_folder(tmp_path: Path, where: str, target: str) -> None:
    if target == "proc" and not Path("/proc/self/environ").exists():
        pytest.skip("no /proc on this platform")
    outside = _outside_file(tmp_path)
    dest = {"file": outside, "dir": outside.parent, "proc": Path("/proc/self/environ")}[target]
    folder, link = _folder(tmp_path, dest, directory=target == "dir")
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        with pytest.raises(UnsafePath) as exc:
            exp.log_asset(folder)
        key = exp.get_key()
    _assert_refused(exc, link, dest)
    # Nothing of the folder was sent, not even the safe file: a partial upload would look complete.
    assert API().get_experiment_by_key(key).get_asset_list() == []
    _blobs_hold_no_secret(tmp_path)


def test_log_asset_relative_symlink_escaping_is_refused(tmp_path: Path, where: str) -> None:
    _outside_file(tmp_path)
    folder, link = _folder(tmp_path, "../elsewhere/secret.txt")
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        with pytest.raises(UnsafePath) as exc:
            exp.log_asset(folder)
    _assert_refused(exc, link, tmp_path / "elsewhere" / "secret.txt")


def test_log_asset_follows_symlinks_inside_the_folder(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "outputs"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "a.txt").write_text("a")
    (folder / "alias.txt").symlink_to("real/a.txt")
    (folder / "dir-alias").symlink_to(folder / "real", target_is_directory=True)
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        exp.log_asset(folder)
        key = exp.get_key()
    names = sorted(a["fileName"] for a in API().get_experiment_by_key(key).get_asset_list())
    assert names == ["outputs/alias.txt", "outputs/dir-alias/a.txt", "outputs/real/a.txt"]


def test_log_model_refuses_a_symlink_out_of_the_folder(tmp_path: Path, where: str) -> None:
    outside = _outside_file(tmp_path)
    folder, link = _folder(tmp_path, outside)
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        with pytest.raises(UnsafePath) as exc:
            exp.log_model("m", folder)
        exp.log_model("fine", folder / "ok.txt")
    _assert_refused(exc, link, outside)
    _blobs_hold_no_secret(tmp_path)


def test_artifact_add_refuses_a_symlink_out_of_the_folder(tmp_path: Path, where: str) -> None:
    outside = _outside_file(tmp_path)
    folder, link = _folder(tmp_path, outside.parent, directory=True)
    with pytest.raises(UnsafePath) as exc:
        Artifact("d").add(folder)
    _assert_refused(exc, link, outside.parent)
    with tallymark.Experiment(project_name="p", workspace="w", **QUIET) as exp:
        os.unlink(link)
        logged = exp.log_artifact(Artifact("d").add(folder))
    assert [f["logicalPath"] for f in logged.assets] == ["outputs/ok.txt"]


def test_cli_upload_of_a_journal_folder_refuses_a_symlink_out_of_it(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tallymark upload FOLDER`` is the CLI's folder upload: a journal whose asset bytes are a link
    to a file elsewhere is refused before anything is sent."""
    import json
    import uuid

    from rich.console import Console
    from typer.testing import CliRunner

    from tallymark import cli
    from tallymark.cli import app

    monkeypatch.setattr(cli, "err", Console(width=1000, stderr=True, color_system=None))  # whole message

    outside = _outside_file(tmp_path)
    journal = tmp_path / "journal"
    journal.mkdir()
    key = uuid.uuid4().hex
    exp = {"key": key, "workspace": "w", "project": "p", "name": "j", "tags": [], "user": "alice"}
    (journal / "experiment.json").write_text(json.dumps(exp))
    (journal / "00000001-asset.json").write_text(json.dumps({"file_name": "x.bin", "upload_id": "u1"}))
    (journal / "00000001-asset.bin").symlink_to(outside)
    result = CliRunner().invoke(app, ["upload", str(journal)])
    assert result.exit_code == 1
    assert "outside the folder" in result.output and str(outside) in result.output, result.output
    from tallymark.sdk.transport import TallymarkError

    with pytest.raises(TallymarkError):  # nothing was sent: not even the experiment was created
        API().get_experiment_by_key(key)
    _blobs_hold_no_secret(tmp_path)
