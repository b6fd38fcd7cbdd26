"""``nninteractive-serve``: option checks, warnings, the startup line; the server itself is not started."""

from __future__ import annotations

import pytest

from napari_nninteractive.cli import serve as cli

KEY_ENV = "NN_INTERACTIVE_API_KEY"


@pytest.fixture
def started(monkeypatch):
    """Run the command without serving: the config and source it would serve, per call."""
    calls = []
    monkeypatch.setattr("napari_nninteractive.server.serve", lambda config, source: calls.append((config, source)))
    monkeypatch.setattr(cli, "_setup_logging", lambda level: None)
    monkeypatch.delenv(KEY_ENV, raising=False)
    return calls


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--max-sessions", "0"], "--max-sessions must be at least 1"),
        (["--idle-timeout", "0"], "--idle-timeout must be more than 0"),
        (["--liveness-timeout", "-1"], "--liveness-timeout must be more than 0"),
        (["--ssl-certfile", "cert.pem"], "both --ssl-certfile and --ssl-keyfile"),
        (["--ssl-certfile", "nope.pem", "--ssl-keyfile", "nope.key"], "is not a file"),
        (["--engine", "network"], "needs --model"),
        (["--fold", "0"], "drop them or use --engine network"),
        (["--compile"], "--compile are for the network"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
        (["--model", "/does/not/exist"], "does not exist"),
    ],
)
def test_bad_options_are_one_line(started, capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert started == []


def test_weight_free_default_and_warnings(started, capsys, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "s3cret-key")
    assert cli.main(["--liveness-timeout", "700", "--max-sessions", "2", "--no-undo"]) == 0
    out, err = capsys.readouterr()
    config, _source = started[0]
    assert config.api_key == "s3cret-key" and config.max_sessions == 2 and config.undo is False
    assert "weight-free" in out and "up to 2 sessions" in out and "http://127.0.0.1:1527" in out
    assert "liveness-timeout" in err
    assert "s3cret-key" not in out + err + repr(config)


def test_exposed_without_key_or_tls_warns(started, capsys):
    assert cli.main(["--host", "0.0.0.0", "--port", "8000", "--max-upload-mb", "10"]) == 0
    err = capsys.readouterr().err
    assert err.count("SECURITY") == 2 and "--api-key" in err and "--ssl-certfile" in err
    assert started[0][0].max_upload_bytes == 10 << 20


def test_network_engine_from_a_model_folder(started, capsys, tiny_model_dir):
    assert cli.main(["--model", str(tiny_model_dir), "--device", "cpu", "--no-autozoom"]) == 0
    out = capsys.readouterr().out
    config, source = started[0]
    assert source.facts.patch_size == (64, 64, 64) and config.autozoom is False
    assert "nnInteractive network" in out and "Random weights" in out


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "--ssl-certfile" in out and "--host 0.0.0.0" in out and KEY_ENV in out
