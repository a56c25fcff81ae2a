"""The managed variant (`srender_node --lifecycle`) over real DDS, driven through the lifecycle services.

configure fails on a model folder without a model (reason logged, back to unconfigured), then
succeeds after fixing the parameter; nothing is published until activate; deactivate stops serving;
cleanup saves worlds and frees everything; configure + activate serve again.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from test_ros_node import NodeProc, Probe, _path, wait_for  # noqa: E402

from srender_ros.core.store import world_id_for_prompt  # noqa: E402

pytestmark = pytest.mark.ros
ENV = "a small test room"


class Lifecycle:
    def __init__(self, probe: Probe) -> None:
        self.change = probe.node.create_client(ChangeState, "/srender/change_state")
        self.get = probe.node.create_client(GetState, "/srender/get_state")
        assert self.change.wait_for_service(timeout_sec=60.0) and self.get.wait_for_service(timeout_sec=60.0)

    def state(self) -> int:
        fut = self.get.call_async(GetState.Request())
        assert wait_for(fut.done, 20.0)
        return int(fut.result().current_state.id)

    def set(self, transition: int) -> bool:
        fut = self.change.call_async(ChangeState.Request(transition=Transition(id=transition)))
        assert wait_for(fut.done, 120.0), "change_state timed out"
        return bool(fut.result().success)


@pytest.fixture
def managed(tmp_path: Path) -> Iterator[tuple[NodeProc, Probe, Lifecycle]]:
    proc = NodeProc(tmp_path / "worlds", tmp_path / "node.log", flags=("--lifecycle",))
    probe = Probe()
    lc = Lifecycle(probe)
    yield proc, probe, lc
    probe.close()
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()
    proc.log.close()


def _frames_arrive(probe: Probe, n: int, start_ns: int) -> bool:
    probe.clear()
    assert wait_for(lambda: probe.pub_path.get_subscription_count() > 0, 30.0)
    probe.pub_path.publish(_path(n, start_ns))
    return wait_for(lambda: len(probe.msgs("image")) >= n, 120.0)


def test_lifecycle_transitions(managed: tuple[NodeProc, Probe, Lifecycle], tmp_path: Path) -> None:
    proc, probe, lc = managed
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    time.sleep(1.0)
    assert probe.subs[0].get_publisher_count() == 0, "an unconfigured node has no image publisher"

    # A failed configure: the reason is logged, the node is back in unconfigured and can try again.
    (tmp_path / "model").mkdir()
    (tmp_path / "depth").mkdir()
    assert probe.set_params.wait_for_service(timeout_sec=30.0)
    assert probe.set(generator="diffusers", model_path=str(tmp_path / "model"),
                     depth_model_path=str(tmp_path / "depth")).successful
    assert not lc.set(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    out = proc.output()
    assert "configure failed:" in out and str(tmp_path / "model") in out, out[-3000:]

    assert probe.set(generator="procedural").successful
    assert lc.set(Transition.TRANSITION_CONFIGURE), proc.output()[-3000:]
    assert lc.state() == State.PRIMARY_STATE_INACTIVE
    probe.clear()
    assert wait_for(lambda: probe.pub_path.get_subscription_count() > 0, 30.0)
    probe.pub_path.publish(_path(3, 1_000 * 10**9))
    time.sleep(2.0)
    assert probe.msgs("image") == [], "an inactive node published frames"
    assert "trajectory ignored: the node is not active" in proc.output()

    assert lc.set(Transition.TRANSITION_ACTIVATE)
    assert lc.state() == State.PRIMARY_STATE_ACTIVE
    assert _frames_arrive(probe, 5, 2_000 * 10**9), proc.output()[-3000:]

    assert lc.set(Transition.TRANSITION_DEACTIVATE)
    assert lc.set(Transition.TRANSITION_CLEANUP)
    assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
    wdir = proc.world_dir / f"w-{world_id_for_prompt(ENV)}"
    assert any(wdir.rglob("*.ply")), "cleanup did not save the world"
    time.sleep(1.0)
    assert probe.subs[0].get_publisher_count() == 0, "cleanup left the image publisher"

    assert lc.set(Transition.TRANSITION_CONFIGURE) and lc.set(Transition.TRANSITION_ACTIVATE)
    assert _frames_arrive(probe, 5, 3_000 * 10**9), proc.output()[-3000:]

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=60) == 0, proc.output()[-3000:]
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
