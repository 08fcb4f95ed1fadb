"""brain_workbench.downloads.fetch against a local HTTP server: terms gate, manifest, resume, checksums."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from rich.console import Console

from brain_workbench.downloads.fetch import RemoteFile, fetch_files, md5_from_etag, read_sha256_manifest
from brain_workbench.types import WorkbenchError
from fixtures_datasets import FileServer

TERMS = "https://example.org/terms"


@pytest.fixture()
def served(tmp_path: Path) -> Path:
    root = tmp_path / "remote"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(bytes(range(256)) * 4000)
    (root / "sub" / "small.txt").write_text("hello brain\n")
    return root


def files_for(server: FileServer, *names: str, required: bool = True) -> list[RemoteFile]:
    return [RemoteFile(n, f"{server.url}/{n}", required=required) for n in names]


def run(files, dest, **kw):
    kw.setdefault("retry_wait", 0.0)
    kw.setdefault("quiet", True)
    return fetch_files(files, dest, dataset="toy", terms_url=TERMS, **kw)


def test_refuses_without_terms_and_touches_nothing(served: Path, tmp_path: Path) -> None:
    with FileServer(served) as server:
        with pytest.raises(WorkbenchError, match="--accept-terms") as err:
            run(files_for(server, "big.bin"), tmp_path / "dest")
        assert TERMS in str(err.value)
        assert server.log.requests == []
    assert not (tmp_path / "dest").exists()


def test_manifest_printed_then_files_verified_and_skipped_on_rerun(served: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    dest = tmp_path / "dest"
    with FileServer(served) as server:
        files = files_for(server, "big.bin", "sub/small.txt")
        report = run(files, dest, accept_terms=True, console=Console(file=out, width=200))
        text = out.getvalue()
        assert "big.bin" in text and "sub/small.txt" in text and "total 1000.0 KiB" in text
        assert text.index("to download: 2 files") < text.index("2 downloaded")
        assert sorted(report.downloaded) == ["big.bin", "sub/small.txt"]
        assert (dest / "big.bin").read_bytes() == (served / "big.bin").read_bytes()
        assert not list(dest.rglob("*.part"))
        heads = [r for r in server.log.requests if r[0] == "HEAD"]
        assert len(heads) == 2
        n_before = len(server.log.requests)
        again = run(files, dest, accept_terms=True)
        assert again.downloaded == [] and sorted(again.skipped) == ["big.bin", "sub/small.txt"]
        assert [r for r in server.log.requests[n_before:] if r[0] == "GET"] == []


def test_dropped_connection_resumes_with_range_in_the_same_run(served: Path, tmp_path: Path) -> None:
    size = (served / "big.bin").stat().st_size
    with FileServer(served, drop_first={"big.bin"}) as server:
        run(files_for(server, "big.bin"), tmp_path / "d", accept_terms=True, retries=2)
        assert server.gets("big.bin") == [None, f"bytes={size // 2}-"]
    assert (tmp_path / "d" / "big.bin").read_bytes() == (served / "big.bin").read_bytes()


def test_interrupted_download_is_kept_and_resumed_by_a_later_run(served: Path, tmp_path: Path) -> None:
    size = (served / "big.bin").stat().st_size
    dest = tmp_path / "d"
    with FileServer(served, drop_first={"big.bin"}) as server:
        with pytest.raises(WorkbenchError, match="rerun the same command to resume"):
            run(files_for(server, "big.bin"), dest, accept_terms=True, retries=0)
        assert (dest / "big.bin.part").stat().st_size == size // 2
        assert not (dest / "big.bin").exists()
        run(files_for(server, "big.bin"), dest, accept_terms=True, retries=0)
        assert server.gets("big.bin")[-1] == f"bytes={size // 2}-"
    assert hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest() == \
        hashlib.sha256((served / "big.bin").read_bytes()).hexdigest()
    assert not (dest / "big.bin.part").exists()


def test_server_without_range_support_restarts_cleanly(served: Path, tmp_path: Path) -> None:
    with FileServer(served, drop_first={"big.bin"}, range_support=False) as server:
        run(files_for(server, "big.bin"), tmp_path / "d", accept_terms=True, retries=2)
    assert (tmp_path / "d" / "big.bin").read_bytes() == (served / "big.bin").read_bytes()


def test_md5_etag_mismatch_is_refused_and_nothing_is_kept(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    with FileServer(served, etags={"sub/small.txt": "0" * 32}) as server:
        with pytest.raises(WorkbenchError, match=r"sub/small.txt: md5 checksum mismatch .*rerun"):
            run(files_for(server, "sub/small.txt"), dest, accept_terms=True)
    assert not (dest / "sub" / "small.txt").exists()
    assert not (dest / "sub" / "small.txt.part").exists()


def test_sha256_manifest_is_checked(served: Path, tmp_path: Path) -> None:
    good = hashlib.sha256((served / "big.bin").read_bytes()).hexdigest()
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"{good}  big.bin\n{'a' * 64}  sub/small.txt\n")
    assert read_sha256_manifest(manifest)["big.bin"] == good
    with FileServer(served) as server:
        with pytest.raises(WorkbenchError, match="sha256 checksum mismatch"):
            run(files_for(server, "big.bin", "sub/small.txt"), tmp_path / "d", accept_terms=True, checksums=manifest)
    assert (tmp_path / "d" / "big.bin").is_file()
    assert not (tmp_path / "d" / "sub" / "small.txt").exists()


def test_missing_files_optional_are_reported_required_are_refused(served: Path, tmp_path: Path) -> None:
    with FileServer(served) as server:
        files = files_for(server, "sub/small.txt") + files_for(server, "nope.bin", required=False)
        report = run(files, tmp_path / "d", accept_terms=True)
        assert [f.path for f in report.unavailable] == ["nope.bin"]
        with pytest.raises(WorkbenchError, match="the server has no .*nope.bin"):
            run(files_for(server, "nope.bin"), tmp_path / "d", accept_terms=True)


def test_etag_parsing() -> None:
    assert md5_from_etag('"9e107d9d372bb6826bd81d3542a419d6"') == "9e107d9d372bb6826bd81d3542a419d6"
    assert md5_from_etag('"9e107d9d372bb6826bd81d3542a419d6-12"') is None
    assert md5_from_etag(None) is None


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="only http"):
        run([RemoteFile("x", "file:///etc/passwd", size=1, md5="0" * 32)], tmp_path, accept_terms=True)
