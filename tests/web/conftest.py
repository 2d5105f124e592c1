"""Fixtures of the web tests: a bundle of generated photos, one shared Searcher, app variants.

The bundle is built once per session with the tiny model through the real
indexer; every app variant shares one loaded Searcher, so a variant costs
milliseconds (the datasette ``make_app_client(**variants)`` pattern).
"""

import shutil

import pytest

from indexer import BuildConfig, build
from search.query.searcher import Searcher
from search.store.bundle import Bundle
from tests.photos import make_photo_tree
from web import ServeConfig, create_app
from web_helpers import serving

PHOTO_COUNT = 36


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory):
    return make_photo_tree(tmp_path_factory.mktemp("photos"), PHOTO_COUNT)


@pytest.fixture(scope="session")
def photo_root(photo_paths):
    return photo_paths[0].parent.parent


@pytest.fixture(scope="session")
def bundle_dir(photo_root, tmp_path_factory, tiny_config_file, tiny_checkpoint):
    index = tmp_path_factory.mktemp("bundle") / "photos-index"
    build(BuildConfig(photos=str(photo_root), index=str(index), model=tiny_config_file.stem,
                      model_config=str(tiny_config_file), pretrained=str(tiny_checkpoint), workers=0,
                      precision="fp32"))  # the vectors of the fp32 `encoder` fixture; the service's auto follows
    return index


@pytest.fixture(scope="session")
def searcher(bundle_dir):
    # No model arguments: the bundle's manifest names the tiny model and its checkpoint.
    return Searcher.open(str(bundle_dir), device="cpu")


@pytest.fixture(scope="session")
def bundle(searcher):
    return searcher.bundle


@pytest.fixture(scope="session")
def make_app(bundle_dir, photo_root, searcher):
    def make(**settings):
        settings.setdefault("warmup", False)
        settings.setdefault("photos", str(photo_root))  # the bundle is not inside the photo folder
        return create_app(ServeConfig(index=str(bundle_dir), device="cpu", **settings), searcher=searcher)

    return make


@pytest.fixture
def own_bundle(tmp_path, photo_paths, searcher, tiny_config_file, tiny_checkpoint):
    """``own_bundle(files=None, **build_settings) -> (root, index, make)`` for tests that change photos or
    the bundle on disk: ``files`` ({relative path: source photo}, by default six of the session's photos)
    copied to a folder of their own and indexed into ``PHOTOS/.photoindex`` (the default layout);
    ``make(vectors="auto", **settings)`` is an app serving that bundle with the session's model."""
    def index(files=None, **build_settings):
        root = tmp_path / "photos"
        files = files or {f"{p.parent.name}/{p.name}": p for p in photo_paths[:6]}
        for rel, source in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
        build(BuildConfig(photos=str(root), model=tiny_config_file.stem, model_config=str(tiny_config_file),
                          pretrained=str(tiny_checkpoint), workers=0, **build_settings))
        index = root / ".photoindex"

        def make(vectors="auto", **settings):
            settings.setdefault("warmup", False)
            served = Searcher(Bundle.open(str(index), vectors=vectors), searcher.encoder)
            return create_app(ServeConfig(index=str(index), device="cpu", **settings), searcher=served)

        return root, index, make

    return index


@pytest.fixture(scope="session")
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def ids_by_path(bundle):
    return {r.path: r.id for r in bundle.metadata.all()}


@pytest.fixture(scope="session")
def live_server(app):
    with serving(app) as url:
        yield url
