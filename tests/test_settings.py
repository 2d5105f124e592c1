"""One settings table per command (``search.settings``): flags, environment, validation and the README agree."""

import argparse
import difflib
from pathlib import Path

import pytest

from indexer import config as build_config
from indexer.config import BuildConfig
from search import settings
from search.encoding.device import DEVICES
from search.errors import InvalidArgumentError
from search.settings import Setting, SettingsTable
from web import config as serve_config
from web.config import ServeConfig

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = {"python -m indexer build": build_config.SETTINGS, "python -m web serve": serve_config.SETTINGS}


@pytest.mark.parametrize("command", TABLES)
def test_the_readme_s_option_table_is_the_settings_table(command):
    expected = TABLES[command].markdown()
    readme = README.read_text()
    if expected not in readme:
        nearest = max(readme.split("\n\n"), key=lambda part: difflib.SequenceMatcher(None, part, expected).ratio())
        diff = "\n".join(difflib.unified_diff(nearest.splitlines(), expected.splitlines(), "README.md", "settings",
                                              lineterm=""))
        pytest.fail(f"the README's table of {command} options differs from its settings table:\n{diff}")


def test_shared_settings_are_declared_once():
    for shared in (settings.MODEL, settings.PRETRAINED, settings.DEVICE, settings.MAX_PIXELS, settings.FOLLOW_LINKS):
        assert build_config.SETTINGS.by_name[shared.name] is shared
        assert serve_config.SETTINGS.by_name[shared.name] is shared
    assert settings.DEVICE.choices == DEVICES


def test_build_config_keeps_its_fields_and_defaults(tmp_path):
    config = BuildConfig(photos=str(tmp_path))
    assert {name: getattr(config, name) for name in build_config.SETTINGS.by_name} == {
        "photos": str(tmp_path), "index": str(tmp_path / ".photoindex"), "model": None, "pretrained": None,
        "model_config": None, "device": "auto", "precision": "auto", "gpus": None, "decode": "auto",
        "batch_size": None, "workers": build_config.default_workers(), "max_pixels": 100_000_000,
        "max_file_bytes": 512 << 20, "include_hidden": False, "max_index_memory": None, "checkpoint_every": 512,
        "follow_links": False, "ray": None, "shards": None, "index_type": "auto"}
    assert BuildConfig(photos=tmp_path, index=tmp_path / "i").index == str(tmp_path / "i")  # paths may be Paths


def test_flags_keep_their_names():
    def flags(add):
        parser = argparse.ArgumentParser()
        add(parser)
        return {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}

    assert flags(build_config.add_arguments) == {
        "--index", "--model", "--pretrained", "--model-config", "--device", "--precision", "--gpus", "--decode",
        "--batch-size", "--workers", "--max-pixels", "--max-file-bytes", "--max-index-memory", "--include-hidden",
        "--checkpoint-every", "--follow-links", "--ray", "--shards", "--index-type"}
    assert flags(serve_config.add_arguments) == {
        "--index", "--host", "--port", "--token", "--model", "--pretrained", "--device", "--precision",
        "--max-upload-bytes", "--max-pixels", "--thumbnail-size", "--index-name", "--allow-image-url",
        "--image-url-max-bytes", "--image-url-timeout", "--cors-origin", "--reload-interval", "--no-warmup",
        "--text-cache-size", "--photos", "--follow-links", "--max-query-pixels", "--image-url-allow-private",
        "--public-url", "--duplicate-threshold"}


def test_build_flags_become_the_config(tmp_path):
    parser = argparse.ArgumentParser()
    build_config.add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--workers", "0", "--include-hidden", "--decode", "workers"])
    config = build_config.config_from_args(args)
    assert (config.workers, config.include_hidden, config.decode, config.checkpoint_every) == (0, True, "workers", 512)


@pytest.mark.parametrize("settings_, words", [
    ({"decode": "gpu"}, "unknown decode 'gpu'; choose one of auto, workers, device"),
    ({"device": "tpu"}, "unknown device 'tpu'; choose one of auto, cpu, cuda"),
    ({"precision": "int4"}, "unknown precision 'int4'; choose one of auto, fp32, int8, bf16, fp16"),
    ({"workers": -1}, "--workers must be an integer >= 0, got -1"),
    ({"workers": True}, "--workers must be an integer >= 0, got True"),
    ({"batch_size": 0}, "--batch-size must be an integer >= 1"),
    ({"max_pixels": 2.5}, "--max-pixels must be an integer from 1 to"),
    ({"checkpoint_every": None}, "--checkpoint-every must be an integer >= 1, got None"),
    ({"max_index_memory": "lots"}, "cannot read memory size 'lots'"),
    ({"include_hidden": "yes"}, "--include-hidden must be true or false"),
    ({"model": 5}, "--model must be a string, got 5"),
    ({"photos": None}, "PHOTOS is required"),
])
def test_bad_build_settings_say_what_is_allowed(tmp_path, settings_, words):
    with pytest.raises(InvalidArgumentError) as error:
        BuildConfig(**{"photos": str(tmp_path), **settings_})
    assert words in str(error.value)


def test_the_service_reads_the_environment_and_the_indexer_does_not(tmp_path):
    env = {"PHOTOSEARCH_INDEX": str(tmp_path), "PHOTOSEARCH_DEVICE": "cpu", "PHOTOSEARCH_WARMUP": "off",
           "PHOTOSEARCH_IMAGE_URL_TIMEOUT": "2.5", "PHOTOSEARCH_HOST": ""}  # "" is unset
    config = ServeConfig.from_env(env)
    assert (config.device, config.warmup, config.image_url_timeout, config.host) == ("cpu", False, 2.5, "127.0.0.1")
    assert build_config.SETTINGS.from_environ(env) == {}


def test_flags_win_over_the_environment_which_wins_over_defaults():
    table = SettingsTable(Setting("size", 3, "a size", kind=int), Setting("name", "x", "a name"), env=True)

    @table.config_class
    class Config:
        pass

    parser = argparse.ArgumentParser()
    table.add_arguments(parser)
    environ = {"PHOTOSEARCH_SIZE": "5", "PHOTOSEARCH_NAME": "from-env"}
    config = table.from_sources(Config, parser.parse_args(["--size", "7"]), environ)
    assert (config.size, config.name) == (7, "from-env")
    assert table.from_sources(Config, parser.parse_args([]), {}).size == 3
    assert table.from_sources(Config, parser.parse_args([]), environ, size=9).size == 9  # explicit arguments last
    with pytest.raises(InvalidArgumentError, match="--size \\(or PHOTOSEARCH_SIZE\\) must be an integer"):
        Config(size="7")


def test_a_table_refuses_a_setting_twice():
    with pytest.raises(ValueError, match="twice"):
        SettingsTable(settings.MODEL, settings.MODEL)


def test_markdown_escapes_pipes_and_shows_defaults():
    table = SettingsTable(Setting("choice", "a", "one `a|b`", choices=("a", "b")),
                          Setting("flag", False, "a switch", kind=bool))
    assert table.markdown().splitlines()[2:] == ["| `--choice a\\|b` | `a` | one `a\\|b` |",
                                                 "| `--flag` | off | a switch |"]


def test_ray_flag_takes_an_optional_address(tmp_path):
    from indexer.cli import make_parser
    from indexer.config import config_from_args

    def ray_of(*flags):
        return config_from_args(make_parser().parse_args(["build", str(tmp_path), *flags])).ray
    assert (ray_of(), ray_of("--ray"), ray_of("--ray", "auto"), ray_of("--ray=10.0.0.1:6379")) == (
        None, "local", "auto", "10.0.0.1:6379")
    with pytest.raises(InvalidArgumentError, match="--shards is where a --ray build writes"):
        BuildConfig(photos=str(tmp_path), shards=str(tmp_path / "s"))
    with pytest.raises(InvalidArgumentError, match="--gpus is for one machine"):
        BuildConfig(photos=str(tmp_path), ray="auto", gpus=2, device="cuda")
