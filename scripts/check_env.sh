#!/bin/sh
# Stop with one line naming what to install, before any set-up step can fail with a trace.
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || { echo "srender setup: $PY not found; install Python >= 3.10 (apt-get install python3 python3-venv)" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "srender setup: Python >= 3.10 needed, found $("$PY" -V 2>&1); install a newer python3 or run make PYTHON=python3.11" >&2; exit 1; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null || { echo "srender setup: Python venv/ensurepip missing; install it (apt-get install python3-venv)" >&2; exit 1; }
command -v cmake >/dev/null 2>&1 || { echo "srender setup: cmake not found; install it (apt-get install cmake), needed to generate the ROS messages" >&2; exit 1; }
command -v "${CC:-cc}" >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || { echo "srender setup: no C compiler found; install one (apt-get install build-essential)" >&2; exit 1; }
command -v "${CXX:-c++}" >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || { echo "srender setup: no C++ compiler found; install one (apt-get install g++)" >&2; exit 1; }
exit 0
