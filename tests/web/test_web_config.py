"""Service settings: one table drives flags, environment variables and validation (the CLI: test_web_serve)."""

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
