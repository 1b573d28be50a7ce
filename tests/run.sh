#!/usr/bin/env bash
# The test command: install everything the tests need, then run pytest.
#   bash tests/run.sh [pytest args]
# Debian packages (installed when missing; needs root or sudo):
#   ibsim-utils libumad2sim0 infiniband-diags  - linux-rdma's C ibsim, umad2sim and ibnetdiscover
#   opensm                                     - the real subnet manager the routing tests compare with
#   graphite-carbon graphite-web               - carbon-cache and the events API the exporters feed
#   rsyslog                                    - the Logstash-style JSON receiver (imtcp/imudp + mmjsonparse)
#   prometheus                                 - the server that scrapes our endpoint
#   debootstrap                                - makes the containers' debian:bookworm-slim base (no registry);
#                                                the container tests (tests/cluster) build ibsim's images themselves
#   python3-simgrid                            - SimGrid 3.32 for /usr/bin/python3: the flow-model peer
#                                                (benchmarks/peer_simgrid.py, tests/test_peer_simgrid.py)
#   libopensm-dev libibumad-dev gcc            - build the monitoring benchmark's OpenSM event plugins
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PKGS=(ibsim-utils libumad2sim0 infiniband-diags opensm graphite-carbon graphite-web rsyslog prometheus debootstrap python3-simgrid
          libopensm-dev libibumad-dev gcc)
missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "tests/run.sh: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3}"
"$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
# the layers of pyproject.toml's import-linter contracts
"$PY" -c "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
# the MAD server's C loop must have been built (gcc is on the CI machine); its tests fail, not skip
export IBSIM_REQUIRE_FASTPATH=1
exec "$PY" -m pytest "$@"
