#!/usr/bin/env bash
# Install dockyard on a fresh Debian 12 machine, as root. Safe to run again.
#
#   ./install.sh          apt packages, a venv in .venv, the package, the C shim, `dockyard` on PATH,
#                         and an offline busybox:latest image (built from Debian's busybox-static)
#   ./install.sh --test   the same plus what the test suite needs (pytest, docker-py, Docker's CLI
#                         and dockerd from Debian's docker.io), without importing the image
set -euo pipefail
cd "$(dirname "$0")"
REPO=$(pwd)
WITH_TESTS=0
[ "${1:-}" = "--test" ] && WITH_TESTS=1

packages=(busybox-static gcc libc6-dev zlib1g-dev python3-venv ca-certificates libseccomp2 nftables iproute2)
[ "$WITH_TESTS" = 1 ] && packages+=(docker.io tmux skopeo umoci openssl docker-registry apache2-utils podman curl netcat-openbsd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# dockerd from docker.io is only a test peer: never leave it running as a system service.
if [ "$WITH_TESTS" = 1 ] && command -v systemctl >/dev/null && systemctl is-active -q docker 2>/dev/null; then
  systemctl stop docker docker.socket 2>/dev/null || true
fi
# so is docker-registry: the tests start their own on free ports.
if [ "$WITH_TESTS" = 1 ] && command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry 2>/dev/null || true
fi

# A Python >= 3.11, by absolute path (a pyenv shim on PATH is slow to start).
PY=""
for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
  [ -n "$candidate" ] || continue
  command -v "$candidate" >/dev/null || continue
  real=$("$candidate" -c 'import sys; print(sys.executable if sys.version_info >= (3, 11) else "")' 2>/dev/null || true)
  if [ -n "$real" ]; then PY=$real; break; fi
done
[ -n "$PY" ] || { echo "install.sh: need Python >= 3.11" >&2; exit 1; }

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
extra=""
[ "$WITH_TESTS" = 1 ] && extra="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extra" --config-settings editable_mode=compat
.venv/bin/python -m compileall -q dockyard >/dev/null
.venv/bin/python -m dockyard.runtime.shim --build
.venv/bin/python -m dockyard.runtime.init_binary  # --init's static docker-init
# The launcher on PATH: an absolute interpreter with -I -S (no site scan: ~10 ms faster to start);
# the CLI needs only the stdlib and this checkout, and `dockyard daemon` loads site itself.
launcher=$(mktemp /usr/local/bin/.dockyard.XXXXXX)
cat > "$launcher" <<LAUNCHER
#!$REPO/.venv/bin/python -IS
import sys
sys.path.insert(0, "$REPO")
from dockyard.cli.main import main
sys.exit(main())
LAUNCHER
chmod 755 "$launcher"
mv -f "$launcher" /usr/local/bin/dockyard

if [ "$WITH_TESTS" = 0 ]; then
  if [ -z "$(dockyard images -q busybox:latest 2>/dev/null)" ]; then
    echo "install.sh: importing busybox:latest from /bin/busybox"
    .venv/bin/python -m dockyard.images.busybox_rootfs | dockyard import --change 'CMD ["sh"]' - busybox:latest
  fi
fi
echo "install.sh: dockyard is installed ($(command -v dockyard))"
