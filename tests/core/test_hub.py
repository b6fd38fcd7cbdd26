"""Model download with the Hugging Face call replaced at its boundary (no network in tests)."""

from pathlib import Path

import pytest

from napari_nninteractive.core import hub
from napari_nninteractive.core.model import load_model_folder
from napari_nninteractive.testing import write_model_folder


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download; writes an official-format folder."""

    def __init__(self, fail_first=None, corrupt=False, chunks=3):
        self.calls = []
        self.fail_first = fail_first
        self.corrupt = corrupt
        self.chunks = chunks

    def __call__(self, repo_id, allow_patterns, local_dir, tqdm_class):
        self.calls.append(repo_id)
        folder = Path(local_dir) / allow_patterns[0].split("/")[0]
        bar = tqdm_class(total=300)
        if self.fail_first is not None and len(self.calls) == 1:
            (folder).mkdir(parents=True, exist_ok=True)
            (folder / "plans.json").write_text("{}")  # a partial download
            bar.update(100)
            raise self.fail_first
        for _ in range(self.chunks):
            bar.update(100)
        write_model_folder(folder)
        if self.corrupt:
            ckpt = folder / "fold_0" / "checkpoint_final.pth"
            ckpt.write_bytes(ckpt.read_bytes()[:200])
        return str(local_dir)


def test_download_then_reuse_the_cache(tmp_path):
    fake, seen = FakeHub(), []
    folder = hub.download_model(root=tmp_path, progress=lambda done, total: seen.append((done, total)), snapshot=fake)
    assert folder == tmp_path / "nnInteractive_v1.0" and load_model_folder(folder).patch_size == (64, 64, 64)
    assert fake.calls == ["MIC-DKFZ/nnInteractive"] and seen[-1] == (300, 300)
    assert hub.download_model(root=tmp_path, snapshot=fake) == folder and len(fake.calls) == 1  # cached: no call


def test_offline_says_what_to_do(tmp_path):
    class ConnectError(Exception):
        pass

    with pytest.raises(hub.DownloadError, match="Cannot reach Hugging Face.*weight-free engine works meanwhile"):
        hub.download_model(root=tmp_path, snapshot=FakeHub(fail_first=ConnectError("no route")))


def test_interrupted_download_resumes(tmp_path):
    fake = FakeHub(fail_first=ConnectionResetError("connection dropped"))
    with pytest.raises(hub.DownloadError):
        hub.download_model(root=tmp_path, snapshot=fake)
    assert hub.cached_model(root=tmp_path) is None  # the partial folder is not taken for a model
    folder = hub.download_model(root=tmp_path, snapshot=fake)
    assert hub.is_complete(folder)


def test_corrupt_checkpoint_is_deleted_and_reported(tmp_path):
    with pytest.raises(hub.DownloadError, match="corrupt and was deleted"):
        hub.download_model(root=tmp_path, snapshot=FakeHub(corrupt=True))
    assert not (tmp_path / "nnInteractive_v1.0" / "fold_0" / "checkpoint_final.pth").exists()
    assert hub.download_model(root=tmp_path, snapshot=FakeHub()).is_dir()  # the next run fetches it again


def test_cancel(tmp_path):
    with pytest.raises(hub.DownloadCancelled):
        hub.download_model(root=tmp_path, should_cancel=lambda: True, snapshot=FakeHub())


def test_unknown_repo_falls_back_to_the_older_name(tmp_path):
    class RepositoryNotFoundError(Exception):
        pass

    class OldNameOnly(FakeHub):
        def __call__(self, repo_id, **kw):
            if repo_id == "MIC-DKFZ/nnInteractive":
                self.calls.append(repo_id)
                raise RepositoryNotFoundError("404")
            return super().__call__(repo_id, **kw)

    fake = OldNameOnly()
    assert hub.download_model(root=tmp_path, snapshot=fake).is_dir()
    assert fake.calls == ["MIC-DKFZ/nnInteractive", "nnInteractive/nnInteractive"]


def test_cli_prints_the_cached_folder_and_errors_in_one_line(tmp_path, capsys, monkeypatch):
    from napari_nninteractive.cli import download as download_cli

    write_model_folder(tmp_path / "nnInteractive_v1.0")
    assert download_cli.main(["--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "nnInteractive_v1.0")

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    assert download_cli.main(["--cache-dir", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach Hugging Face" in err and "Traceback" not in err


def test_list_models_names_the_repository_folders_and_the_cache(tmp_path):
    write_model_folder(tmp_path / "nnInteractive_v1.0")
    (tmp_path / "half_downloaded").mkdir()  # incomplete folders are not offered as cached
    files = [
        "README.md",
        "nnInteractive_v1.0/plans.json",
        "nnInteractive_v1.0/fold_0/checkpoint_final.pth",
        "nnInteractive_v2.0/plans.json",
        "docs/plans/readme.md",
    ]
    seen = []

    def list_files(repo_id):
        seen.append(repo_id)
        return files

    listing = hub.list_models(tmp_path, list_files=list_files)
    assert listing.remote == ("nnInteractive_v1.0", "nnInteractive_v2.0") and listing.cached == ("nnInteractive_v1.0",)
    assert listing.names == ("nnInteractive_v1.0", "nnInteractive_v2.0") and seen == ["MIC-DKFZ/nnInteractive"]


def test_list_models_offline_shows_the_cache_and_says_so(tmp_path):
    write_model_folder(tmp_path / "nnInteractive_v1.0")

    def offline(repo_id):
        raise ConnectionError("no route")

    listing = hub.list_models(tmp_path, list_files=offline)
    assert listing.remote == () and listing.cached == ("nnInteractive_v1.0",) and "cannot be reached" in listing.note
    assert hub.list_models(tmp_path / "nothing", list_files=offline).names == ("nnInteractive_v1.0",)


def test_cli_list(tmp_path, capsys, monkeypatch):
    from napari_nninteractive.cli import download as download_cli

    write_model_folder(tmp_path / "nnInteractive_v1.0")
    monkeypatch.setattr("huggingface_hub.list_repo_files", lambda repo_id: ["nnInteractive_v2.0/plans.json"])
    assert download_cli.main(["--list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["nnInteractive_v1.0\tcached", "nnInteractive_v2.0\trepository"]


# ----------------------------------------------------------------------------- offline, fast and plain


def _no_proxy(monkeypatch):
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)


def test_hf_hub_offline_makes_no_network_call_and_says_so_plainly(tmp_path, monkeypatch):
    write_model_folder(tmp_path / "nnInteractive_v1.0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def forbidden(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr("socket.create_connection", forbidden)
    listing = hub.list_models(tmp_path, list_files=forbidden, probe=forbidden)
    assert listing.remote == () and listing.cached == ("nnInteractive_v1.0",)
    assert listing.message.startswith("Hugging Face cannot be reached (offline? HF_HUB_OFFLINE is set)")
    assert str(tmp_path / "nnInteractive_v1.0") in listing.message
    with pytest.raises(hub.DownloadError, match="Cannot reach Hugging Face.*HF_HUB_OFFLINE is set"):
        hub.download_model("other_model", root=tmp_path, snapshot=forbidden, probe=forbidden)


def test_probe_is_bounded_even_when_the_connection_hangs(monkeypatch):
    import time

    def hangs(*args, **kwargs):
        time.sleep(2)
        raise TimeoutError("gave up")

    _no_proxy(monkeypatch)
    monkeypatch.setattr("socket.create_connection", hangs)
    start = time.monotonic()
    assert "no answer within 0.3 s" in hub.probe_hub(timeout=0.3)
    assert time.monotonic() - start < 1.5


def test_failing_probe_lists_the_cache_fast_without_tracebacks(tmp_path, capsys, monkeypatch):
    import time

    from napari_nninteractive.cli import download as download_cli

    _no_proxy(monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    write_model_folder(tmp_path / "nnInteractive_v1.0")
    start = time.monotonic()
    assert download_cli.main(["--list", "--cache-dir", str(tmp_path)]) == 0  # huggingface_hub's own function
    assert time.monotonic() - start < 10
    out, err = capsys.readouterr()
    assert out.splitlines() == ["nnInteractive_v1.0\tcached"]
    assert "Hugging Face cannot be reached (offline?" in err and str(tmp_path / "nnInteractive_v1.0") in err
    assert "Traceback" not in err and "Retry" not in err and "WARNING" not in err
    assert download_cli.main(["--name", "other_model", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach Hugging Face to download other_model (127.0.0.1" in err and "Traceback" not in err
    assert time.monotonic() - start < 20
