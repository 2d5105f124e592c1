"""Fixtures of the web tests: a bundle of generated photos, one shared Searcher, app variants.

The bundle is built once per session with the tiny model through the real
indexer; every app variant shares one loaded Searcher, so a variant costs
milliseconds (the datasette ``make_app_client(**variants)`` pattern).
"""

import pytest

from indexer import BuildConfig, build
from search.query.searcher import Searcher
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
def make_app(bundle_dir, searcher):
    def make(**settings):
        settings.setdefault("warmup", False)
        return create_app(ServeConfig(index=str(bundle_dir), device="cpu", **settings), searcher=searcher)

    return make


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
