# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv/ when missing (`make setup` does only that); re-running is quick.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.srender-setup-stamp
MSG_BUILD := build/msgs
TF2_BUILD := build/tf2_msgs
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

# $(call rosidl_install,SOURCE_DIR,BUILD_DIR,EXTRA_CMAKE_ARGS): configure, build and install an
# interface package into the venv with rosidl, logging to BUILD_DIR.log (the caller says what failed).
rosidl_install = rm -rf $(2) && mkdir -p $(dir $(2)) && . $(VENV)/bin/activate \
  && AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) cmake -S $(1) -B $(2) $(3) -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH=$(CURDIR)/$(VENV) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) \
    -DPython3_EXECUTABLE=$(CURDIR)/$(VPY) > $(2).log 2>&1 \
  && cmake --build $(2) -j2 >> $(2).log 2>&1 \
  && cmake --install $(2) >> $(2).log 2>&1

.PHONY: setup demo test lint unit bench clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py CMakeLists.txt package.xml $(wildcard msg/*.msg action/*.action) \
    interfaces/tf2_msgs/msg/TFMessage.msg interfaces/tf2_msgs/CMakeLists.txt cmake/repoint_wheel_includes.cmake \
    $(wildcard launch/*.py config/*.yaml) scripts/srender_node scripts/srender \
    scripts/check_env.sh
	@sh scripts/check_env.sh
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	$(call rosidl_install,.,$(MSG_BUILD),-DSRENDER_INTERFACES_ONLY=ON) \
	  || { tail -30 $(MSG_BUILD).log; echo "srender setup: message generation failed (full log: $(MSG_BUILD).log)" >&2; exit 1; }
	$(VPY) -c "from srender_ros.msg import RenderRequest, KeyframeSchedule, WorldStatus; from srender_ros.action import RenderTrajectory"
	@# what `ros2 launch srender_ros ...` / `ros2 run srender_ros ...` find through the ament index
	@test -f $(VENV)/share/srender_ros/launch/srender.launch.py && test -x $(VENV)/lib/srender_ros/srender_node \
	  || { echo "srender setup: launch files or executables missing in $(VENV)/share|lib/srender_ros" >&2; exit 1; }
	@# tf2_msgs (sensor cameras read /tf) is not on PyPI: generate TFMessage when none is importable.
	$(VPY) -c "import tf2_msgs.msg" 2>/dev/null || { $(call rosidl_install,interfaces/tf2_msgs,$(TF2_BUILD),) \
	  && $(VPY) -c "from tf2_msgs.msg import TFMessage" \
	  || { tail -30 $(TF2_BUILD).log; echo "srender setup: tf2_msgs generation failed (full log: $(TF2_BUILD).log)" >&2; exit 1; }; }
	@touch $(STAMP)
	@echo "srender setup: .venv ready"

demo: setup
	$(VENV)/bin/srender demo --out-dir demo_out

lint: setup
	$(VENV)/bin/ruff check srender_ros tests benchmarks
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/python -m pytest -q tests

bench: setup
	$(VPY) benchmarks/run_all.py

clean:
	rm -rf build demo_out .mypy_cache .pytest_cache .ruff_cache
