#!/usr/bin/env bash
# make bench: time site.yml's first converge and its no-op re-run on 1, 2, 4 and 8 containers,
# over SSH and over podman exec, without and with the fleet cache; write the table and the plots
# to bench/. Needs root (podman, as the container tests). See scripts/bench.py --help.
#
#   scripts/bench.sh                 # the whole matrix (hours on 2 cores)
#   scripts/bench.sh --quick         # N = 1, 2
#   scripts/bench.sh --hosts 1,2 --connections ssh --cache on
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
case " $* " in
  *" -h "*|*" --help "*) exec python3 "$top/scripts/bench.py" --help ;;
esac
"$top/scripts/bootstrap.sh" --test
command -v ssh-keyscan >/dev/null 2>&1 || { echo "bench.sh: ssh-keyscan is missing: apt-get install openssh-client" >&2; exit 2; }
# shellcheck source=scripts/fixtures-env.sh
AIWS_TEST_UBUNTU=0 . "$top/scripts/fixtures-env.sh"
python3 scripts/bench.py "$@"
