"""Real Ray actors against the in-process run of the same worker."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from lwgan.parallel import PoolOptions, one_thread, run_jobs

pytestmark = pytest.mark.slow


class AreaWorker:
    """Builds the body model once, then renders one pose per job and returns the silhouette area."""

    def __init__(self, size: int) -> None:
        one_thread()
        from lwgan.body.model import BodyModel

        self.model = BodyModel.default()
        self.size = size

    def run(self, job: int) -> dict:
        from lwgan.body.cameras import fit_weak_perspective, weak_perspective_project
        from lwgan.body.preview import preview_batch
        from lwgan.render.raster import RasterSettings, rasterize

        if job < 0:
            raise ValueError(f"job {job} is negative")
        _, poses, betas = preview_batch(self.model, job + 1)
        with torch.no_grad():
            verts = self.model(betas[-1:], poses[-1:]).vertices
        proj = weak_perspective_project(verts, fit_weak_perspective(verts, fill=0.6))
        area = int(rasterize(proj, self.model.faces, RasterSettings(self.size, self.size)).silhouette.sum())
        return {"job": job, "area": area, "pid": os.getpid(), "threads": torch.get_num_threads()}


@pytest.fixture(scope="module", autouse=True)
def pickle_this_module_by_value():
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_workers_equal_the_in_process_run():
    jobs = [0, 1, 2, -1, 3, 4]
    seen = []
    local, local_fail = run_jobs(AreaWorker, (64,), jobs, PoolOptions(use_ray=False), key=str)
    remote, remote_fail = run_jobs(AreaWorker, (64,), jobs, PoolOptions(num_workers=2), key=str,
                                   on_result=lambda job, result: seen.append(job))
    by_job = {r["job"]: r["area"] for r in local}
    assert {r["job"]: r["area"] for r in remote} == by_job
    assert len(by_job) == 5 and len(set(by_job.values())) > 1
    assert [f.key for f in local_fail] == [f.key for f in remote_fail] == ["-1"]
    assert "ValueError: job -1 is negative" in remote_fail[0].reason
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert len({r["pid"] for r in remote}) == 2, "two actors, each built once"
    assert {r["pid"] for r in remote}.isdisjoint({os.getpid()})
    assert {r["threads"] for r in remote} == {1}
