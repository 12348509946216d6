"""Path safety: every traversal form is refused, safe names pass unchanged, symlinks cannot escape."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tallymark.store.paths import UnsafePath, WalkEntry, clean_logical_path, safe_join, safe_walk

# (path, a fragment of the reason given)
REFUSED: list[tuple[str, str]] = [
    # parent and current directory segments
    ("..", "'..'"),
    ("../etc/passwd", "'..'"),
    ("a/../../b", "'..'"),
    ("a/..", "'..'"),
    ("a/b/../../..", "'..'"),
    (".", "'.'"),
    ("./a", "'.'"),
    ("a/./b", "'.'"),
    ("a/.", "'.'"),
    ("...", "dots and spaces"),
    (".. ", "dots and spaces"),
    (" ..", "dots and spaces"),
    ("a/. /b", "dots and spaces"),
    # percent-encoded dots and slashes, single and multiple encoding, mixed case, overlong UTF-8
    ("%2e%2e/etc/passwd", "percent-encoded"),
    ("%2E%2E/etc/passwd", "percent-encoded"),
    ("%2e./x", "percent-encoded"),
    (".%2e/x", "percent-encoded"),
    ("a/%2e%2e/b", "percent-encoded"),
    ("%2e%2e%2fetc%2fpasswd", "percent-encoded"),
    ("..%2fetc", "percent-encoded"),
    ("..%2Fetc", "percent-encoded"),
    ("a%2fb", "percent-encoded"),
    ("..%5cwindows", "percent-encoded"),
    ("a%5Cb", "percent-encoded"),
    ("%252e%252e/etc/passwd", "percent-encoded"),
    ("%252E%252E%252Fetc", "percent-encoded"),
    ("%25252e%25252e/x", "percent-encoded"),
    ("a%252fb", "percent-encoded"),
    ("%%32%65%%32%65/x", "percent-encoded"),  # decodes to %2e%2e
    ("%c0%ae%c0%ae/x", "percent-encoded"),
    ("%C0%AF", "percent-encoded"),
    ("%e0%80%ae%e0%80%ae/x", "percent-encoded"),
    ("%c1%9c", "percent-encoded"),
    ("a%00b", "percent-encoded"),
    ("a%0ab", "percent-encoded"),
    ("a%250ab", "percent-encoded"),
    ("a%7fb", "percent-encoded"),
    # backslashes
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("\\\\server\\share", "backslash"),
    ("C:\\Windows\\system32", "backslash"),
    # absolute paths, UNC paths, drive letters
    ("/etc/passwd", "absolute"),
    ("/", "absolute"),
    ("//server/share", "absolute"),
    ("///x", "absolute"),
    ("C:/Windows", "drive"),
    ("c:x", "drive"),
    ("C:", "drive"),
    ("a/D:/b", "drive"),
    # empty segments, empty path
    ("", "empty path"),
    ("a//b", "empty path segment"),
    ("a/", "empty path segment"),
    ("a/b//", "empty path segment"),
    # NUL and other control characters, separators, bidi overrides, surrogates
    ("a\x00b", "control character U+0000"),
    ("\x00", "control character"),
    ("a/b\x00.txt", "control character"),
    ("a\nb", "control character U+000A"),
    ("a\rb", "control character"),
    ("a\tb", "control character"),
    ("a\x1bb", "control character"),
    ("a\x7fb", "control character U+007F"),
    ("a\x85b", "control character U+0085"),
    ("a\u2028b", "separator"),
    ("a\u2029b", "separator"),
    ("evil\u202etxt.exe", "bidirectional"),
    ("a\u2066b", "bidirectional"),
    ("a\ud800b", "surrogate"),
    # compatibility forms that normalise to a traversal
    ("\uff0e\uff0e/etc", "'..'"),  # fullwidth full stops
    ("\uff0e\uff0e\uff0fetc", "'..'"),  # fullwidth solidus too
    ("a/\u2024\u2024/b", "'..'"),  # one dot leader x2 -> ".."
    ("\uff3cetc", "backslash"),  # fullwidth reverse solidus
    ("\uff0fetc", "absolute"),
    # length limits
    ("x" * 256, "255"),
    ("é" * 128, "255"),  # 256 UTF-8 bytes
    ("/".join(["abcdefg"] * 520), "4096"),
]


@pytest.mark.parametrize(("path", "reason"), REFUSED, ids=[repr(p)[:40] for p, _ in REFUSED])
def test_refused(path: str, reason: str) -> None:
    with pytest.raises(UnsafePath) as info:
        clean_logical_path(path)
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)
    assert info.value.path == path
    assert "unsafe path" in str(info.value)


@pytest.mark.parametrize("bad", [b"a", None, 1, Path("a")])
def test_non_str_refused(bad: object) -> None:
    with pytest.raises(UnsafePath, match="must be a str"):
        clean_logical_path(bad)  # type: ignore[arg-type]


ACCEPTED: list[tuple[str, str]] = [
    ("a", "a"),
    ("data/train.csv", "data/train.csv"),
    ("a/b/c/d.txt", "a/b/c/d.txt"),
    (".hidden", ".hidden"),
    ("a/.config/x", "a/.config/x"),
    ("a..b", "a..b"),
    ("..a", "..a"),
    ("a..", "a.."),
    ("....x", "....x"),
    ("file name with spaces.txt", "file name with spaces.txt"),
    ("100%.txt", "100%.txt"),
    ("100%25.txt", "100%25.txt"),  # "%25" alone decodes to "%": nothing dangerous
    ("a%20b", "a%20b"),  # kept literally: logical paths are not URL-decoded
    ("ab:c", "ab:c"),
    ("model~1", "model~1"),
    ("~", "~"),
    ("e\u0301t\u0065\u0301.csv", "\u00e9t\u00e9.csv"),  # NFD in, NFC out
    ("données/été.parquet", "données/été.parquet"),
    ("数据/训练.csv", "数据/训练.csv"),
    ("emoji-\U0001f600.png", "emoji-\U0001f600.png"),
    ("a\u200db", "a\u200db"),  # zero-width joiner (emoji sequences) is allowed
    ("x" * 255, "x" * 255),
    ("a\uff0fb", "a\uff0fb"),  # a fullwidth solidus inside one segment is just a character
]


@pytest.mark.parametrize(("path", "expected"), ACCEPTED, ids=[repr(p)[:40] for p, _ in ACCEPTED])
def test_accepted(path: str, expected: str) -> None:
    cleaned = clean_logical_path(path)
    assert cleaned == expected
    assert clean_logical_path(cleaned) == cleaned  # idempotent


# --------------------------------------------------------------------------------------------
# safe_join on a real file system


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``root`` (the safe area) and ``outside`` (a secret next to it)."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "sub" / "ok.txt").write_text("ok")
    return root, outside


def test_safe_join_inside(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert safe_join(root, "sub/ok.txt") == (root / "sub" / "ok.txt").resolve()
    assert safe_join(root, "new/dir/file.bin") == root.resolve() / "new" / "dir" / "file.bin"
    assert safe_join(root, "e\u0301.txt") == root.resolve() / "\u00e9.txt"


@pytest.mark.parametrize(("path", "reason"), REFUSED, ids=[repr(p)[:40] for p, _ in REFUSED])
def test_safe_join_refuses_every_form(tree: tuple[Path, Path], path: str, reason: str) -> None:
    root, _ = tree
    with pytest.raises(UnsafePath):
        safe_join(root, path)


def test_safe_join_symlinked_dir_pointing_outside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "link/secret.txt")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "link/new-file")  # a file that does not exist yet, under an escaping link


def test_safe_join_symlinked_file_pointing_outside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "sub" / "leak.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "sub/leak.txt")


def test_safe_join_relative_symlink_escaping(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "sub" / "up").symlink_to("../../outside")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "sub/up/secret.txt")


def test_safe_join_symlink_to_absolute_system_path(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "etc").symlink_to("/etc")
    with pytest.raises(UnsafePath, match="outside"):
        safe_join(root, "etc/passwd")


def test_safe_join_symlink_to_root_itself(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "self").symlink_to(root)
    with pytest.raises(UnsafePath):
        safe_join(root, "self")  # resolves to the root: not a file inside it
    assert safe_join(root, "self/sub/ok.txt") == (root / "sub" / "ok.txt").resolve()


def test_safe_join_symlink_inside_root_is_followed(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)
    assert safe_join(root, "alias/ok.txt") == (root / "sub" / "ok.txt").resolve()


def test_safe_join_root_behind_a_symlink(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = tree
    via = tmp_path / "via"
    via.symlink_to(root, target_is_directory=True)
    assert safe_join(via, "sub/ok.txt") == (root / "sub" / "ok.txt").resolve()


def test_safe_join_symlink_loop(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(UnsafePath):
        safe_join(root, "loop/x")


# --------------------------------------------------------------------------------------------
# safe_walk on a real file system


def _entries(folder: Path) -> list[tuple[str, int]]:
    return [(e.logical_path, e.size) for e in safe_walk(folder)]


def test_safe_walk_lists_regular_files(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "b" / "c").mkdir(parents=True)
    (folder / "empty-dir").mkdir()
    (folder / "a.txt").write_bytes(b"aa")
    (folder / "b" / "x.bin").write_bytes(b"x" * 10)
    (folder / "b" / "c" / ".hidden").write_bytes(b"")
    entries = safe_walk(folder)
    assert [(e.logical_path, e.size) for e in entries] == [("a.txt", 2), ("b/c/.hidden", 0), ("b/x.bin", 10)]
    assert all(isinstance(e, WalkEntry) and e.path.is_file() for e in entries)
    assert entries[0].path == (folder / "a.txt").resolve()


def test_safe_walk_follows_symlinks_inside(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "f.txt").write_bytes(b"abc")
    (folder / "file-link").symlink_to("real/f.txt")
    (folder / "dir-link").symlink_to(folder / "real", target_is_directory=True)
    entries = safe_walk(folder)
    assert [(e.logical_path, e.size) for e in entries] == [
        ("dir-link/f.txt", 3),
        ("file-link", 3),
        ("real/f.txt", 3),
    ]
    assert {e.path for e in entries} == {(folder / "real" / "f.txt").resolve()}


@pytest.mark.parametrize("kind", ["file", "dir", "relative-dir", "absolute-system"])
def test_safe_walk_refuses_symlinks_pointing_outside(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "ds"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "fine.txt").write_text("fine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    link = folder / "sub" / "link"
    if kind == "file":
        link.symlink_to(outside / "secret.txt")
    elif kind == "dir":
        link.symlink_to(outside, target_is_directory=True)
    elif kind == "relative-dir":
        link.symlink_to("../../outside", target_is_directory=True)
    else:
        link.symlink_to("/etc", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside the folder") as info:
        safe_walk(folder)
    assert "sub/link" in str(info.value)


def test_safe_walk_refuses_escape_through_a_linked_dir(tmp_path: Path) -> None:
    """A symlink inside a followed (inside) directory symlink is checked too."""
    folder = tmp_path / "ds"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "leak").symlink_to(tmp_path)
    (folder / "alias").symlink_to(folder / "real", target_is_directory=True)
    with pytest.raises(UnsafePath, match="outside the folder"):
        safe_walk(folder)


def test_safe_walk_refuses_broken_symlink(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dangling").symlink_to(folder / "missing")
    with pytest.raises(UnsafePath, match="broken symlink"):
        safe_walk(folder)


@pytest.mark.parametrize("target", [".", "..", "ABS"], ids=["to-itself", "to-the-folder", "absolute"])
def test_safe_walk_refuses_symlink_loops(tmp_path: Path, target: str) -> None:
    folder = tmp_path / "ds"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f").write_text("x")
    (folder / "sub" / "loop").symlink_to(str(folder) if target == "ABS" else target, target_is_directory=True)
    with pytest.raises(UnsafePath, match="loop"):
        safe_walk(folder)


def test_safe_walk_refuses_mutual_symlink_loop(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    (folder / "a" / "to-b").symlink_to("../b", target_is_directory=True)
    (folder / "b" / "to-a").symlink_to("../a", target_is_directory=True)
    with pytest.raises(UnsafePath, match="loop"):
        safe_walk(folder)


def test_safe_walk_refuses_fifo_and_socket(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    with pytest.raises(UnsafePath, match="not a regular file"):
        safe_walk(folder)
    (folder / "pipe").unlink()
    sock_path = folder / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(UnsafePath, match="not a regular file"):
            safe_walk(folder)


@pytest.mark.parametrize(
    "name", ["back\\slash.txt", "new\nline.txt", "..."], ids=["backslash", "newline", "dots"]
)
def test_safe_walk_refuses_unsafe_file_names(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / name).write_text("x")
    with pytest.raises(UnsafePath, match="file name refused"):
        safe_walk(folder)


def test_safe_walk_folder_behind_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "f.txt").write_text("x")
    via = tmp_path / "via"
    via.symlink_to(real, target_is_directory=True)
    assert _entries(via) == [("f.txt", 1)]


def test_safe_walk_needs_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        safe_walk(tmp_path / "f")
    with pytest.raises(NotADirectoryError):
        safe_walk(tmp_path / "missing")
