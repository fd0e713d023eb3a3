"""The batch call on a real dask.distributed LocalCluster (2 worker processes) gives the serial
results: the package keeps no global state and its inputs and results pickle."""

import numpy as np
import pytest

import frizzview

from conftest import need


def test_combine_many_on_a_local_cluster_matches_serial(tmp_path):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        need(False, f"dask.distributed ({e})")
    stars = {
        f"synth{i}": frizzview.synth_apogee(visits=3, seed=10 + i, truth_seed=100 + i)
        for i in range(4)
    }
    opts = dict(method="forward", threads=1)
    serial = frizzview.combine_many(stars, **opts)
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        assert len(workers) == 2
        pids = client.run(__import__("os").getpid)
        assert len(set(pids.values())) == 2
        futures = [
            client.submit(frizzview.combine_many, {name: star}, workers=[workers[i % 2]], pure=False, **opts)
            for i, (name, star) in enumerate(stars.items())
        ]
        remote = {}
        for f in futures:
            remote.update(f.result(timeout=900))
        where = client.who_has(futures)
        assert len({w for ws in where.values() for w in ws}) == 2
    assert remote.keys() == serial.keys()
    for name in stars:
        a, b = remote[name].forward, serial[name].forward
        assert np.isfinite(a.flux).sum() > 6000
        np.testing.assert_array_equal(a.no_data, b.no_data)
        np.testing.assert_array_equal(a.flags, b.flags)
        np.testing.assert_allclose(a.flux, b.flux, rtol=1e-12, atol=0, equal_nan=True)
        np.testing.assert_allclose(a.band, b.band, rtol=1e-12, atol=0, equal_nan=True)
    # A result that came back from a worker still writes (recomputed from its pickled dataset).
    remote["synth0"].write(tmp_path / "synth0.npz")
    np.testing.assert_allclose(
        np.load(tmp_path / "synth0.npz")["y_star"], serial["synth0"].forward.flux, rtol=1e-12, equal_nan=True
    )
