#!/usr/bin/env bash
# Install the four peer hashers of the retrieval benchmark, each in its own virtual environment
# (never in the project's .venv: perception pins opencv-contrib-python-headless<5 and videohash
# 3.0.1 needs Pillow<10, both of which would replace the project's OpenCV 5 / Pillow).
#
#   bash benchmarks/retrieval/install_peers.sh [VENV_ROOT]     (default $CHAIN_PEER_VENVS or ~/.cache/chain-sdk/peer-venvs)
#
# vpdq and tmkpy are source distributions that compile C++: vpdq against FFmpeg's libav* headers
# (+ cmake, pkg-config), tmkpy with SWIG. On Debian/Ubuntu the script installs those with apt-get
# when it runs as root; otherwise install them first. A peer that fails to install is reported
# and skipped; the benchmark then lists it as "not installed" with the reason.
set -uo pipefail
ROOT="${1:-${CHAIN_PEER_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/chain-sdk/peer-venvs}}"
PY="${PYTHON:-python3}"
mkdir -p "$ROOT"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    cmake pkg-config swig g++ libavcodec-dev libavformat-dev libavdevice-dev libavutil-dev \
    libswscale-dev libswresample-dev libavfilter-dev >/dev/null || echo "apt-get failed: vpdq/tmkpy may not build"
fi

install_peer() {  # NAME PIP-ARGS...
  local name="$1"; shift
  echo "== $name -> $ROOT/$name"
  "$PY" -m venv "$ROOT/$name" && "$ROOT/$name/bin/pip" install -q --upgrade pip >/dev/null \
    && "$ROOT/$name/bin/pip" install -q "$@" \
    && "$ROOT/$name/bin/python" -c "import $name" && echo "   ok" || echo "   FAILED: $name"
}

install_peer videohash "videohash==3.0.1" "Pillow<10"   # 3.0.1 uses PIL.Image.ANTIALIAS (gone in Pillow 10)
install_peer vpdq numpy "vpdq==0.2.5"
install_peer tmkpy numpy "tmkpy==0.1.1"
install_peer perception "perception==0.9.3"
