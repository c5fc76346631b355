#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test when it is missing.
# apt reads a private sources list built from this machine's own Debian mirror (read at run
# time from /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list); /etc/apt is not edited.
#   tests/browser/ensure-chromium.sh     # prints the chromium path
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then command -v chromium; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "ensure-chromium: chromium is missing; run as root to install it (apt-get install chromium)" >&2; exit 2; }

mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  # First URI of a stanza whose suites are not the security pocket.
  mirror=$(awk 'BEGIN{RS=""; FS="\n"} /Suites:/ && !/Suites:[^\n]*security/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit } }' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $3 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "ensure-chromium: no Debian mirror in /etc/apt/sources*" >&2; exit 2; }
. /etc/os-release
state=$(mktemp -d /var/tmp/aiws-apt.XXXXXX)
trap 'rm -rf "$state"' EXIT
mkdir -p "$state/lists/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $VERSION_CODENAME main" >"$state/sources.list"
opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$state/lists")
apt-get "${opts[@]}" -q update >&2
DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" -q -y --no-install-recommends install chromium >&2
command -v chromium
