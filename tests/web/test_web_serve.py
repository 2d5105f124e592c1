"""``python -m web serve``: the CLI in-process through ``web.cli.main(argv)``, and the documented
production command, gunicorn on the app factory, as a real server.

Importing torch dominates gunicorn's start-up (about 10 s on 2 cores), hence
its ``slow`` mark; every error path of the CLI runs in this interpreter.
"""

import os
import shutil

import pytest
from flask import Flask
from web_helpers import Subprocess

from web.cli import main


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("PHOTOSEARCH_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("argv, words", [
    (["--port", "eighty"], "--port: invalid int value"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--colour", "red"], "unrecognized arguments: --colour"),
])
def test_malformed_flags_exit_2_with_argparse_s_message(argv, words, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["serve", *argv])
    assert exit.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("argv, env, words", [
    ([], {}, "PHOTOSEARCH_INDEX"),
    (["--port", "70000"], {}, "--port (or PHOTOSEARCH_PORT) must be an integer from 0 to 65535, got 70000"),
    (["--token", "short"], {}, "at least 8 printable ASCII characters"),
    (["--image-url-timeout", "0"], {}, "--image-url-timeout"),
    ([], {"PHOTOSEARCH_PORT": "eighty"}, "PHOTOSEARCH_PORT must be an integer, got 'eighty'"),
    ([], {"PHOTOSEARCH_WARMUP": "maybe"}, "PHOTOSEARCH_WARMUP must be true or false"),
])
def test_bad_settings_are_one_error_line_and_exit_1(tmp_path, monkeypatch, capsys, argv, env, words):
    if "PHOTOSEARCH_INDEX" not in words:
        argv = ["--index", str(tmp_path), *argv]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_cli_fails_clearly_without_a_bundle(tmp_path, capsys):
    assert main(["serve", "--index", str(tmp_path / "none")]) == 1
    assert "python -m indexer build" in capsys.readouterr().err


def test_cli_serves_on_localhost_by_default(bundle_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup"]) == 0
    app, kwargs = calls[0]
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000 and kwargs["debug"] is False
    assert app.test_client().get("/healthz").status_code == 200


def test_cli_warns_when_exposed_without_a_token(bundle_dir, monkeypatch, capsys):
    monkeypatch.setattr(Flask, "run", lambda app, **kwargs: None)
    main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup", "--host", "0.0.0.0"])
    assert "without a token" in capsys.readouterr().err


def test_cli_reports_a_taken_port(bundle_dir, monkeypatch, capsys):
    def taken(app, **kwargs):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(Flask, "run", taken)
    assert main(["serve", "--index", str(bundle_dir), "--device", "cpu", "--no-warmup"]) == 1
    assert "Address already in use" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gunicorn") is None, reason="gunicorn is not installed (pip install .[serve])")
def test_gunicorn_on_the_app_factory(bundle_dir, bundle):
    server = Subprocess([shutil.which("gunicorn"), "--workers", "1", "--threads", "4", "--bind", "127.0.0.1:PORT",
                         "web:create_app()"], {"PHOTOSEARCH_INDEX": str(bundle_dir), "PHOTOSEARCH_DEVICE": "cpu"})
    try:
        assert server.get("/healthz") == {"status": "ok", "count": bundle.count}
        body = server.get("/api/search?q=a+dog&k=3")
        assert len(body["results"]) == 3 and body["model"] == "tiny-test"
        assert server.get("/indices-list") == ["photos-index"]
    finally:
        server.stop()


def test_the_app_runs_blas_and_faiss_in_one_thread_per_call(make_app):
    # Concurrent requests each run small products: with threaded calls they queued inside OpenBLAS
    # and behind faiss's OpenMP team (benchmarks/RESULTS.md, "Serving at concurrency 16").
    import threading

    import faiss
    from threadpoolctl import threadpool_info

    from web.threads import in_one_thread

    app = make_app()
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
    seen = {}

    def fresh_thread():  # OpenMP keeps its thread count per thread: a new one starts at the default
        seen["before"] = faiss.omp_get_max_threads()
        assert app.test_client().get("/healthz").status_code == 200
        seen["request"] = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(seen["before"])
        seen["wrapped"] = in_one_thread(faiss.omp_get_max_threads)()

    thread = threading.Thread(target=fresh_thread)
    thread.start()
    thread.join()
    assert seen["request"] == seen["wrapped"] == 1
