"""file:// links, limited to the configured roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgqueue.errors import AccessDenied, FileNotFound, FileTooLarge, InvalidFileUrl, NotConfigured
from pgqueue.settings import Settings
from pgqueue.storage import fetch
from pgqueue.storage.local import open_local


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    (folder / "drawings").mkdir(parents=True)
    (folder / "drawings" / "plate 1.pdf").write_bytes(b"%PDF plate")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return folder


@pytest.fixture
def settings(root: Path) -> Settings:
    return Settings(file_roots=(root,), max_file_size=1000)


def test_file_inside_the_root_is_copied_into_a_private_temp_file(
    root: Path, settings: Settings, spool_dir: Path
) -> None:
    target = root / "drawings" / "plate 1.pdf"
    with fetch(target.as_uri(), settings) as path:
        assert path.parent.parent == spool_dir
        assert path.name == "plate 1.pdf"  # extractors and plug-ins see the file's own name
        assert path.read_bytes() == b"%PDF plate"
        assert not path.samefile(target)
    assert target.exists()
    assert list(spool_dir.iterdir()) == []


@pytest.mark.parametrize("spelling", ["file://{path}", "file://localhost{path}"])
def test_raw_spaces_and_localhost_are_accepted(
    root: Path, settings: Settings, spelling: str
) -> None:
    url = spelling.format(path=root / "drawings" / "plate 1.pdf")
    with fetch(url, settings) as path:
        assert path.read_bytes() == b"%PDF plate"


def test_file_outside_the_roots_is_refused(root: Path, settings: Settings) -> None:
    with (
        pytest.raises(AccessDenied, match="PGQUEUE_FILE_ROOTS"),
        fetch((root.parent / "secret.txt").as_uri(), settings),
    ):
        pass


@pytest.mark.parametrize(
    "tail",
    [
        "/../secret.txt",
        "/drawings/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/drawings/../plate.pdf",
    ],
)
def test_dot_dot_is_refused(root: Path, settings: Settings, tail: str) -> None:
    with pytest.raises(AccessDenied, match=r"'\.\.'"), fetch(f"file://{root}{tail}", settings):
        pass


def test_symlink_pointing_out_of_the_root_is_refused(root: Path, settings: Settings) -> None:
    (root / "escape.txt").symlink_to(root.parent / "secret.txt")
    with pytest.raises(AccessDenied), fetch((root / "escape.txt").as_uri(), settings):
        pass


def test_symlinked_folder_pointing_out_of_the_root_is_refused(
    root: Path, settings: Settings
) -> None:
    (root / "elsewhere").symlink_to(root.parent, target_is_directory=True)
    with (
        pytest.raises(AccessDenied),
        fetch((root / "elsewhere" / "secret.txt").as_uri(), settings),
    ):
        pass


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "per-component"])
@pytest.mark.parametrize("link", ["latest.pdf", "current/plate 1.pdf"])
def test_no_symlink_is_followed_even_one_pointing_inside_the_root(
    root: Path, settings: Settings, use_openat2: bool, link: str
) -> None:
    # A link inside the root can be swapped for one pointing out between a check and a use;
    # following none is the only rule that has no such window.
    (root / "latest.pdf").symlink_to(root / "drawings" / "plate 1.pdf")
    (root / "current").symlink_to(root / "drawings", target_is_directory=True)
    with pytest.raises(AccessDenied, match="symbolic link"):
        os.close(open_local((root / link).as_uri(), settings, use_openat2=use_openat2))


@pytest.mark.parametrize("use_openat2", [True, False], ids=["openat2", "per-component"])
def test_both_ways_of_opening_read_the_same_file(
    root: Path, settings: Settings, use_openat2: bool
) -> None:
    target = root / "drawings" / "plate 1.pdf"
    descriptor = open_local(target.as_uri(), settings, use_openat2=use_openat2)
    try:
        assert os.path.samestat(os.fstat(descriptor), target.stat())
    finally:
        os.close(descriptor)


def test_a_fifo_is_refused_without_waiting_for_a_writer(root: Path, settings: Settings) -> None:
    os.mkfifo(root / "pipe.pdf")
    with (
        pytest.raises(InvalidFileUrl, match="not a regular file"),
        fetch((root / "pipe.pdf").as_uri(), settings),
    ):
        pass


def test_root_given_through_a_symlink_still_works(root: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    settings = Settings(file_roots=(alias,))
    with fetch((alias / "drawings" / "plate 1.pdf").as_uri(), settings) as path:
        assert path.read_bytes() == b"%PDF plate"


def test_missing_file_is_file_not_found(root: Path, settings: Settings) -> None:
    with pytest.raises(FileNotFound), fetch((root / "nope.pdf").as_uri(), settings):
        pass


def test_missing_file_outside_the_root_says_nothing_about_existence(
    root: Path, settings: Settings
) -> None:
    with pytest.raises(AccessDenied), fetch("file:///nonexistent/nope.pdf", settings):
        pass


def test_no_roots_configured_refuses_file_links(root: Path) -> None:
    with (
        pytest.raises(NotConfigured, match="PGQUEUE_FILE_ROOTS"),
        fetch((root / "drawings" / "plate 1.pdf").as_uri(), Settings()),
    ):
        pass


def test_file_over_the_limit_is_refused(root: Path) -> None:
    settings = Settings(file_roots=(root,), max_file_size=5)
    with (
        pytest.raises(FileTooLarge, match="10 bytes"),
        fetch((root / "drawings" / "plate 1.pdf").as_uri(), settings),
    ):
        pass


def test_a_folder_is_not_a_file(root: Path, settings: Settings) -> None:
    with (
        pytest.raises(InvalidFileUrl, match="not a regular file"),
        fetch((root / "drawings").as_uri(), settings),
    ):
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_access_denied(root: Path, settings: Settings) -> None:
    target = root / "drawings" / "plate 1.pdf"
    target.chmod(0)
    with pytest.raises(AccessDenied), fetch(target.as_uri(), settings):
        pass


@pytest.mark.parametrize(
    "url",
    [
        "file:relative/path.pdf",
        "file:/one/slash.pdf",
        "file://server/share/a.pdf",
        "file:///a.pdf?x=1",
        "file:///a%00b.pdf",
        "file:///%ff.pdf",
    ],
)
def test_malformed_file_urls_are_invalid(settings: Settings, url: str) -> None:
    with pytest.raises(InvalidFileUrl), fetch(url, settings):
        pass
