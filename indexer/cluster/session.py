"""Connecting the build to Ray: a cluster's address, ``auto``, or a Ray started for the run."""

from ..errors import BuildError

LOCAL = "local"  # --ray alone: a Ray of this machine, started for the run and stopped after it
_started = []  # whether this module initialised Ray (then it also shuts it down)


def import_ray():
    try:
        import ray
        import ray.data  # Ray Data is an extra of its own
    except ImportError as e:
        raise BuildError(f"--ray needs Ray Data and pyarrow: pip install -e \".[ray]\" ({e})") from e
    return ray


def connect(address):
    """Initialise Ray for ``address`` (``local``, ``auto`` or ``HOST:PORT``) unless it is already."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address == LOCAL:
            ray.init(address="local", include_dashboard=False, log_to_driver=False)  # never a running one
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BuildError(f"cannot connect to the Ray cluster at {address}: {e}; start one with `ray start --head`, "
                         "or use --ray alone for a Ray of this machine") from e
    _started.append(True)
    return ray


def disconnect():
    """Shut down what :func:`connect` initialised (a cluster connected to keeps running)."""
    if _started:
        import ray

        ray.shutdown()
        _started.clear()
