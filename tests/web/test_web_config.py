"""Settings: one table drives flags, environment variables and validation."""

import pytest

from search.errors import InvalidArgumentError
from web import ServeConfig
from web.cli import main, make_parser
from web.config import config_from_args


def parse(argv, environ=None):
    return config_from_args(make_parser().parse_args(["serve", *argv]), environ or {})


def test_defaults_are_safe(tmp_path):
    config = ServeConfig(index=str(tmp_path / ".photoindex"))
    assert config.host == "127.0.0.1" and config.port == 8000
    assert config.token is None and config.allow_image_url is False and config.cors_origin is None
    assert config.max_upload_bytes == 20 * 1024 * 1024
    assert config.index_name == "photoindex"


def test_flags_win_over_environment_which_wins_over_defaults(tmp_path):
    env = {"PHOTOSEARCH_INDEX": str(tmp_path), "PHOTOSEARCH_PORT": "9000", "PHOTOSEARCH_TOKEN": "from-the-env",
           "PHOTOSEARCH_ALLOW_IMAGE_URL": "true", "PHOTOSEARCH_IMAGE_URL_TIMEOUT": "2.5"}
    config = parse(["--port", "9100", "--no-warmup"], env)
    assert config.index == str(tmp_path) and config.port == 9100 and config.token == "from-the-env"
    assert config.allow_image_url is True and config.image_url_timeout == 2.5 and config.warmup is False
    assert parse(["--index", str(tmp_path)]).warmup is True


@pytest.mark.parametrize("settings, words", [
    ({}, "PHOTOSEARCH_INDEX"),
    ({"port": 70000}, "--port"),
    ({"max_upload_bytes": 10}, "--max-upload-bytes"),
    ({"thumbnail_size": 0}, "--thumbnail-size"),
    ({"device": "tpu"}, "cpu"),
    ({"token": "short"}, "8"),
    ({"token": "has a space"}, "ASCII"),
    ({"image_url_timeout": 0}, "--image-url-timeout"),
    ({"reload_interval": -1}, "--reload-interval"),
])
def test_bad_settings_say_which_flag(tmp_path, settings, words):
    if settings:
        settings["index"] = str(tmp_path)
    with pytest.raises(InvalidArgumentError, match=words):
        ServeConfig(**settings)


@pytest.mark.parametrize("name, raw", [("PHOTOSEARCH_PORT", "eighty"), ("PHOTOSEARCH_ALLOW_IMAGE_URL", "maybe")])
def test_bad_environment_values_are_named(tmp_path, name, raw):
    with pytest.raises(InvalidArgumentError, match=name):
        ServeConfig.from_env({"PHOTOSEARCH_INDEX": str(tmp_path), name: raw})


def test_help_lists_every_setting_with_its_variable(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--index", "--host", "--port", "--token", "--model", "--pretrained", "--allow-image-url",
                 "--max-upload-bytes", "--cors-origin", "--no-warmup", "PHOTOSEARCH_TOKEN"):
        assert flag in out


def test_cli_fails_clearly_without_a_bundle(tmp_path, capsys):
    assert main(["serve", "--index", str(tmp_path / "none")]) == 1
    assert "python -m indexer build" in capsys.readouterr().err


def test_cli_serves_on_localhost_by_default(bundle_dir, monkeypatch):
    from flask import Flask

    calls = []
    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup"]) == 0
    app, kwargs = calls[0]
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000 and kwargs["debug"] is False
    assert app.test_client().get("/healthz").status_code == 200


def test_cli_warns_when_exposed_without_a_token(bundle_dir, monkeypatch, capsys):
    from flask import Flask

    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: None)
    main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup", "--host", "0.0.0.0"])
    assert "without a token" in capsys.readouterr().err


def test_cli_reports_a_taken_port(bundle_dir, monkeypatch, capsys):
    from flask import Flask

    def taken(app, **kwargs):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(Flask, "run", taken)
    assert main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup"]) == 1
    assert "Address already in use" in capsys.readouterr().err
