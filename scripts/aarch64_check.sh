#!/usr/bin/env bash
# Release check for the edge box: chain-sdk on AArch64 (a Jetson's CPU), under qemu-user emulation
# in an arm64 Debian root file system, from a bare x86-64 Debian machine (as root: apt, chroot).
#
#   1. host tools: qemu-user 10.0 (bookworm-backports on Debian 12) with its binfmt_misc entry
#      (arm64 binaries run through qemu), mmdebstrap
#   2. an arm64 Debian 12 root file system with python3 (3.11), g++ and cmake (built once, cached)
#   3. on the host, meanwhile, in the x86-64 dev venv (`make install`, Python 3.11): the default
#      model exported to ONNX and the codes it gives the sample clips (scripts/reference_codes.sh)
#   4. in the root file system, meanwhile: a venv and `pip install ".[cpu]"` of this checkout, which
#      builds cpp_ext natively for aarch64 (NEON kernels); test tools pytest, hypothesis,
#      imageio-ffmpeg, onnx
#   5. the runtime tests there (scripts/runtime_tests.txt: kernels and index, codes, Encoder and CLI
#      on the exported default model against the reference codes, onnxruntime backend, video);
#      the last line is pytest's summary.
#
# What it covers and what not (no CUDA, TensorRT, DLA or NVDEC under qemu; Python 3.10 only on
# x86-64, scripts/py310_check.sh), and how long it takes: docs/jetson.md.
# On the loaded 2-core dev VM: root file system 70 min, first emulated install 34 min (13.5 min
# with the kept venv), tests 84 min (199 passed, 7 skipped): about 3 hours from bare.
# That is the release check, not part of .ci/run (CI's 2 cores and 90 minutes already hold `make
# test`, and this needs root and binfmt_misc). Everything it creates lies in $CHAIN_SDK_AARCH64_CACHE
# (default ~/.cache/chain-sdk/aarch64); delete rootfs/ there to rebuild the root file system.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CHAIN_SDK_AARCH64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chain-sdk/aarch64}
SUITE=${CHAIN_SDK_AARCH64_SUITE:-bookworm}
MIRROR=${CHAIN_SDK_AARCH64_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$CACHE/rootfs
start=$(date +%s)
step() { printf '\n== [%4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

step "host tools (qemu-user-static >= 10, mmdebstrap)"
# qemu >= 10: Debian 12's own qemu 7.2 segfaults while Python loads onnxruntime's aarch64 extension
# (onnxruntime 1.32); 10.0 (bookworm-backports, Debian 13's release) runs it.
qemu_ok() { dpkg --compare-versions "$(dpkg-query -W -f='${Version}' qemu-user 2>/dev/null)" ge 1:10; }
if ! command -v mmdebstrap >/dev/null || ! qemu_ok; then
  qemu=(qemu-user-static qemu-user qemu-user-binfmt)
  if [ "$(. /etc/os-release && echo "$VERSION_CODENAME")" = bookworm ]; then
    echo "deb $MIRROR bookworm-backports main" > /etc/apt/sources.list.d/chain-sdk-backports.list
    qemu=("${qemu[@]/%//bookworm-backports}")   # only qemu from backports
  fi
  apt-get -o DPkg::Lock::Timeout=600 update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    "${qemu[@]}" mmdebstrap arch-test ca-certificates
fi
# Containers often start without binfmt_misc mounted; the kernel needs it to hand arm64 ELF to qemu.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
# Registered afresh each run: an entry with the F flag keeps the qemu binary it was registered with
# open (an older one survives a package upgrade), and without systemd nothing registers the new one.
BINFMT=/proc/sys/fs/binfmt_misc
[ ! -e $BINFMT/qemu-aarch64 ] || echo -1 > $BINFMT/qemu-aarch64
cat /usr/lib/binfmt.d/qemu-aarch64.conf > $BINFMT/register
arch-test arm64 >/dev/null || { echo "arm64 binaries do not run here (binfmt/qemu)" >&2; exit 1; }
qemu-aarch64 --version | head -n 1

mkdir -p "$CACHE"
step "reference on the host, in the background: exported default model, the sample clips' codes"
"$ROOT/scripts/reference_codes.sh" "$CACHE/reference" > "$CACHE/reference.log" 2>&1 &
reference=$!

step "arm64 root file system ($SUITE) in $ROOTFS"
if [ ! -e "$ROOTFS/.complete" ]; then
  rm -rf "$ROOTFS" "$ROOTFS.tmp"
  mmdebstrap --arch=arm64 --variant=apt \
    --include=python3,python3-venv,python3-dev,g++,cmake,make,ca-certificates \
    "$SUITE" "$ROOTFS.tmp" "$MIRROR"
  touch "$ROOTFS.tmp/.complete" && mv "$ROOTFS.tmp" "$ROOTFS"
fi

step "this checkout into the root file system (tracked and untracked files, not ignored ones)"
rm -rf "$ROOTFS/src" "$ROOTFS/ref" && mkdir -p "$ROOTFS/src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$ROOTFS/src"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# The host's trust store, for networks that reach PyPI through a TLS proxy only the host trusts
# (a superset of Debian's bundle); pip in the root file system is told to use it (PIP_CERT).
cp -L /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"

# Runs a bash command as root in the arm64 root file system, in a private mount namespace: /proc,
# /sys and /dev are unmounted when it exits, however it exits.
in_rootfs() {
  unshare --mount --propagation private bash -c '
    mount -t proc proc "$0/proc" && mount --rbind /sys "$0/sys" && mount --rbind /dev "$0/dev"
    exec chroot "$0" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
      CHAIN_SDK_CACHE=/ref/cache CHAIN_SDK_TEST_MODEL_DIR=/ref/model \
      CHAIN_SDK_TEST_REFERENCE_CODES=/ref/codes.jsonl bash -euo pipefail -c "$1"' "$ROOTFS" "$1"
}

step "in the arm64 root file system: venv, pip install \".[cpu]\" (builds cpp_ext), test tools"
in_rootfs '
  uname -m && python3 --version
  # The venv is kept between runs (an emulated install of the wheels takes half an hour); pip
  # reinstalls the checkout itself every time and upgrades any dependency it no longer satisfies.
  [ -x /opt/venv/bin/python ] || { python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --upgrade pip; }
  /opt/venv/bin/pip install -q "/src[cpu]" pytest hypothesis imageio-ffmpeg==0.8.1 onnx
  # The installed package (with the compiled extension), never the checkout, is under test.
  /opt/venv/bin/python -I -c "import chain_sdk, chain_sdk._hamming as h; print(chain_sdk.__file__, h.isa_available())"'

step "waiting for the reference"
wait "$reference" || { tail -n 30 "$CACHE/reference.log" >&2; exit 1; }
cp -r "$CACHE/reference" "$ROOTFS/ref"

step "runtime tests on aarch64"
in_rootfs "cd /src && exec /opt/venv/bin/pytest -q -p no:cacheprovider --durations=15 $(grep -v '^#' "$ROOT/scripts/runtime_tests.txt" | tr '\n' ' ')"
