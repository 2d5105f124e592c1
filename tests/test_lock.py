"""The bundle's writer lock: an OS lock that goes with its process (issue 13: no stale .lock)."""

import os
import signal
import subprocess
import sys

import pytest

from search.errors import BundleLockedError
from search.store.writer import LOCK_FILE, bundle_lock
from tests.photos import make_photo_tree

HOLD = """
import sys, time
from search.store.writer import bundle_lock
with bundle_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder():
    """``holder(index)``: a process that holds ``index``'s lock until it is killed."""
    children = []

    def start(index):
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        child = subprocess.Popen([sys.executable, "-c", HOLD, str(index)], stdout=subprocess.PIPE, text=True,
                                 env=env)
        children.append(child)
        assert child.stdout.readline().strip() == "locked"
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()


def test_a_killed_build_leaves_no_lock_that_blocks_the_next(tmp_path, make_config, holder):
    photos = tmp_path / "photos"
    make_photo_tree(photos, 3)
    child = holder(tmp_path / "index")
    with pytest.raises(BundleLockedError, match=f"another build is writing .* \\(pid {child.pid}\\)"):
        make_config(photos)()  # two builds still exclude each other, with the same clear error
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert os.path.exists(tmp_path / "index" / LOCK_FILE)  # the file stays; the lock went with the process
    assert make_config(photos)().indexed == 3


def test_the_lock_is_released_after_a_failed_build(tmp_path):
    with pytest.raises(RuntimeError):
        with bundle_lock(tmp_path / "index"):
            raise RuntimeError("the build failed")
    with bundle_lock(tmp_path / "index"):
        pass
