"""Where a set comes from, its format, selection, GAIL subsampling and every malformed-file case."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO

from ail.demo_source import resolve
from ail.demos import DEMO_FORMAT_VERSION, DemoSpec, ensure_demos, load_demos, read_demo_file, save_demos
from ail.errors import ConfigError
from ail.expert_files import ExpertFile
from ail.experts import ShippedExpert
from ail.minari_io import DatasetRecord

pytestmark = pytest.mark.xdist_group("test_demos")  # its module-scoped fixture is built once


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    ensure_demos("cartpole", DemoSpec(6), root=root)
    return root


@pytest.fixture(scope="module")
def demo_file(demo_root):
    return demo_root / "cartpole" / DemoSpec(6).filename("cartpole")


def test_format_contents(demo_file):
    data, meta = read_demo_file(demo_file, "cartpole")
    assert meta["format_version"] == DEMO_FORMAT_VERSION and meta["env_id"] == "CartPole-v1"
    T = len(data["obs"])
    assert data["obs"].shape == (T, 4) and data["obs"].dtype == np.float32
    assert data["actions"].shape == (T,) and data["actions"].dtype == np.int64
    assert data["ep_lengths"].sum() == T and len(data["ep_returns"]) == 6
    ends = np.cumsum(data["ep_lengths"]) - 1
    # Exactly the last step of each episode ends it; the expert survives, so it is truncation.
    assert np.array_equal(np.flatnonzero(data["terminated"] | data["truncated"]), ends)
    assert np.allclose(data["ep_returns"], [data["rewards"][s : e + 1].sum() for s, e in zip(ends - data["ep_lengths"] + 1, ends)])
    # next_obs of step t is obs of step t+1 inside an episode.
    inner = np.setdiff1d(np.arange(T - 1), ends)
    assert np.array_equal(data["next_obs"][inner], data["obs"][inner + 1])
    assert json.loads(demo_file.with_suffix(".json").read_text())["n_transitions"] == T


def test_mujoco_demos_store_simulator_state(tmp_path):
    path = ensure_demos("invertedpendulum", DemoSpec(1), root=tmp_path)
    data, _ = read_demo_file(path, "invertedpendulum")
    assert data["qpos"].shape == (len(data["obs"]), 2) and data["qvel"].shape == (len(data["obs"]), 2)
    # InvertedPendulum's observation is (qpos, qvel): the stored state must match it.
    assert np.allclose(np.c_[data["qpos"], data["qvel"]], data["obs"], atol=1e-5)


def test_generation_is_reproducible(tmp_path, demo_file):
    other = ensure_demos("cartpole", DemoSpec(6), root=tmp_path)
    a, _ = read_demo_file(demo_file, "cartpole")
    b, _ = read_demo_file(other, "cartpole")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_min_return_filter(tmp_path):
    path = ensure_demos("cartpole", DemoSpec(2, deterministic=False, min_return=195.0), root=tmp_path)
    data, meta = read_demo_file(path, "cartpole")
    assert (data["ep_returns"] >= 195).all() and meta["spec"]["min_return"] == 195.0


def test_selection_first_and_seeded(demo_root):
    first = load_demos("cartpole", 3, spec=DemoSpec(6), root=demo_root)
    assert first.meta["chosen"] == [0, 1, 2] and len(first) == 1500
    a = load_demos("cartpole", 3, seed=5, spec=DemoSpec(6), root=demo_root)
    b = load_demos("cartpole", 3, seed=5, spec=DemoSpec(6), root=demo_root)
    assert a.meta["chosen"] == b.meta["chosen"] and np.array_equal(a.obs, b.obs)


def test_subsampling_every_kth_with_random_offsets(demo_root):
    full = load_demos("cartpole", 4, spec=DemoSpec(6), root=demo_root)
    sub = load_demos("cartpole", 4, subsample=20, seed=1, spec=DemoSpec(6), root=demo_root)
    assert abs(len(sub) - 4 * 500 / 20) <= 4
    offsets = []
    for j in range(4):
        rows = sub.obs[sub.traj_index == j]
        traj = load_demos("cartpole", 6, spec=DemoSpec(6), root=demo_root)
        src = traj.obs[traj.traj_index == sub.meta["chosen"][j]]
        pos = [int(np.flatnonzero((src == r).all(axis=1))[0]) for r in rows]
        assert np.all(np.diff(pos) == 20)
        offsets.append(pos[0])
    assert all(0 <= o < 20 for o in offsets) and len(set(offsets)) > 1
    assert len(full) == 2000


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_demos(demo_root, n):
    with pytest.raises(ConfigError, match=f"demos={n} is invalid"):
        load_demos("cartpole", n, spec=DemoSpec(6), root=demo_root)


def test_more_demos_than_dataset(demo_root):
    with pytest.raises(ConfigError, match="demos=7 but .* holds 6 trajectories; accepted: 1..6"):
        load_demos("cartpole", 7, spec=DemoSpec(6), root=demo_root)


def _corrupt(tmp_path, demo_file, mutate):
    data, meta = read_demo_file(demo_file, "cartpole")
    meta = mutate(data, meta) or meta
    path = tmp_path / "bad.npz"
    save_demos(path, data, meta)
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d, m: {**m, "env_id": "Acrobot-v1"}, "is for Acrobot-v1, but env=cartpole is CartPole-v1"),
        (lambda d, m: d.update(obs=d["obs"][:, :3]), r"obs shape \(3,\) does not match"),
        (lambda d, m: d.update(actions=np.full(len(d["actions"]), 7)), r"do not fit CartPole-v1's Discrete\(2\)"),
        (lambda d, m: d["obs"].__setitem__((3, 1), np.nan), "obs contains NaN"),
        (lambda d, m: d.update(ep_lengths=d["ep_lengths"] + 1), "episode lengths sum to"),
        (lambda d, m: {**m, "format_version": 99}, "has format 99; accepted: 1"),
        (lambda d, m: [d.pop("rewards"), None][1], r"lacks arrays \['rewards'\]"),
    ],
)
def test_malformed_files_are_rejected(tmp_path, demo_file, mutate, message):
    path = _corrupt(tmp_path, demo_file, mutate)
    with pytest.raises(ConfigError, match=message):
        load_demos("cartpole", 1, path=path)


def test_truncated_file_is_rejected(tmp_path, demo_file):
    path = tmp_path / "cut.npz"
    raw = demo_file.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ConfigError, match="truncated or corrupt"):
        load_demos("cartpole", 1, path=path)


def test_demo_file_of_wrong_env_shape(tmp_path, demo_file):
    shutil.copy(demo_file, tmp_path / "x.npz")
    with pytest.raises(ConfigError, match="is for CartPole-v1, but env=acrobot is Acrobot-v1"):
        load_demos("acrobot", 1, path=tmp_path / "x.npz")


def test_a_set_rolled_out_by_a_replaced_expert_is_regenerated(tmp_path, capsys):
    path = ensure_demos("cartpole", DemoSpec(2), root=tmp_path)
    meta_path = path.with_suffix(".json")
    fresh = json.loads(meta_path.read_text())
    stale = dict(fresh, expert=dict(fresh["expert"], training_steps=1))  # as if made by an earlier expert
    meta_path.write_text(json.dumps(stale))
    assert ensure_demos("cartpole", DemoSpec(2), root=tmp_path) == path
    assert "rolled out by another expert" in capsys.readouterr().out
    assert json.loads(meta_path.read_text())["expert"] == fresh["expert"]
    # An up-to-date set is reused, not rolled out again.
    mtime = path.stat().st_mtime_ns
    ensure_demos("cartpole", DemoSpec(2), root=tmp_path)
    assert path.stat().st_mtime_ns == mtime and "rolled out" not in capsys.readouterr().out


def test_a_cached_set_is_used_where_no_expert_is_installed(tmp_path):
    path = ensure_demos("cartpole", DemoSpec(2), root=tmp_path)
    (tmp_path / "no_experts").mkdir()
    assert ensure_demos("cartpole", DemoSpec(2), root=tmp_path, experts=str(tmp_path / "no_experts")) == path


def test_one_decision_names_the_set_and_its_expert(tmp_path):
    shipped = resolve("cartpole", DemoSpec(2), root=tmp_path)
    assert isinstance(shipped.expert, ShippedExpert) and shipped.dataset is None
    assert shipped.path == tmp_path / "cartpole" / "CartPole-v1_n2_det_s0.npz"
    users = resolve("cartpole", DemoSpec(2), root=tmp_path, expert_path=str(REPO / "experts" / "cartpole" / "model.zip"))
    assert isinstance(users.expert, ExpertFile) and users.expert.record_dir == tmp_path / "cartpole" and users.path == shipped.path
    with pytest.raises(ConfigError, match="is not a file; accepted: an SB3 model.zip"):
        resolve("cartpole", DemoSpec(2), root=tmp_path, expert_path=str(tmp_path / "nothing.zip"))
    # A dataset's run is scored by the installed expert where there is one, else by the dataset's own return.
    dataset = DemoSpec(2, source="minari:test/cartpole/random-v0")
    assert isinstance(resolve("cartpole", dataset, root=tmp_path).expert, ShippedExpert)
    (tmp_path / "no_experts").mkdir()
    alone = resolve("cartpole", dataset, root=tmp_path, experts=tmp_path / "no_experts")
    assert alone.dataset == "minari:test/cartpole/random-v0" and isinstance(alone.expert, DatasetRecord)
    assert alone.expert.path == alone.path == tmp_path / "cartpole" / "minari" / "test_cartpole_random-v0.npz"
