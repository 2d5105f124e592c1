"""A photo folder stands for its index: ``indexer info``, ``indexer duplicates`` and ``web serve`` find
``PHOTOS/.photoindex``, and say what a path is when it names no index (issue 13)."""

import json
import os

import pytest
from flask import Flask

from indexer.cli import main as indexer_main
from search.errors import BundleError
from search.store.locate import find_bundle, locate_bundle
from tests.photos import make_photo_tree
from web import ServeConfig
from web.cli import main as web_main


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("PHOTOSEARCH_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def photos(tmp_path, make_config):
    """A photo folder with its index in the default place, PHOTOS/.photoindex."""
    folder = tmp_path / "photos"
    make_photo_tree(folder, 3)
    make_config(folder, index=None)()
    return folder


def test_a_photo_folder_and_its_index_name_the_same_bundle(photos):
    index = str(photos / ".photoindex")
    assert find_bundle(photos) == locate_bundle(photos) == locate_bundle(index) == index


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "nothing", "no index at {p}/nothing: there is no such file or folder; build one with: "
                              "python -m indexer build PHOTOS --index {p}/nothing"),
    (lambda p: (p / "a.jpg").write_bytes(b"x") and p / "a.jpg", "{p}/a.jpg is a file, not an index"),
    (lambda p: p, "{p} is a folder but not an index (no manifest.json), and holds no .photoindex folder; to "
                  "index the photos in it: python -m indexer build {p}"),
    (lambda p: (p / ".photoindex").mkdir() or p, "{p}/.photoindex holds no finished index yet (its first build "
                                                 "did not complete); run: python -m indexer build {p}"),
    (lambda p: (p / ".photoindex").mkdir() or p / ".photoindex", "{p}/.photoindex holds no finished index yet"),
])
def test_a_path_that_is_no_index_is_described(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(BundleError) as error:
        locate_bundle(path)
    assert str(error.value).startswith(words.format(p=tmp_path))


def test_indexer_info_and_duplicates_take_the_photo_folder(photos, capsys):
    assert indexer_main(["info", str(photos), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == str(photos / ".photoindex")
    assert indexer_main(["duplicates", "--index", str(photos), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == 3
    assert indexer_main(["info", str(photos / "album0" / "img0000.jpg")]) == 1
    assert "is a file, not an index" in capsys.readouterr().err


def test_the_service_takes_the_photo_folder(photos, monkeypatch, capsys):
    config = ServeConfig(index=str(photos))
    assert (config.index, config.index_name) == (str(photos / ".photoindex"), "photoindex")
    served = []
    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: served.append(app))
    assert web_main(["serve", str(photos), "--device", "cpu", "--no-warmup"]) == 0
    client = served[0].test_client()
    assert client.get("/healthz").json["count"] == 3
    assert client.get("/indices-list").json == ["photoindex"]  # the name the README's clip-retrieval example uses
    assert web_main(["serve", str(photos.parent), "--device", "cpu"]) == 1
    assert "is a folder but not an index" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        web_main(["serve", str(photos), "--index", str(photos)])
    assert "not both" in capsys.readouterr().err


def test_the_build_ends_with_the_command_that_serves_it(tmp_path, model_args, capsys):
    photos = tmp_path / "my photos"
    make_photo_tree(photos, 2)
    assert indexer_main(["build", str(photos), "--workers", "0", *model_args]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"search them in a browser: python -m web serve '{photos}'  (then open http://127.0.0.1:8000)")
    assert indexer_main(["build", str(photos), "--index", str(tmp_path / "elsewhere"), "--workers", "0",
                         *model_args]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"search them in a browser: python -m web serve --index {tmp_path}/elsewhere  "
        "(then open http://127.0.0.1:8000)")
