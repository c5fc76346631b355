#!/bin/sh
# Download an installer with curl, retrying and resuming a partial file between attempts.
#   fetch-installer.sh URL DEST ATTEMPTS [SHA256]
# A server that cannot resume (no Range support, HTTP 416 on a complete or foreign file) makes
# the next attempt start over; 403, 404 and 410 stop at once. Checksum verification is the
# caller's job; given SHA256, a file that already has it is not fetched again.
# One download per folder at a time (flock on DEST's folder): a download started in the background
# by an earlier run that is still going is waited for, not joined by a second curl on the same file.
set -u
url=$1
dest=$2
attempts=${3:-5}
sha256=${4:-}
if command -v flock >/dev/null 2>&1; then
  exec 9<"$(dirname "$dest")" && flock 9
fi
if [ -n "$sha256" ] && [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$sha256" ]; then
  echo "$dest is complete (sha256 $sha256)"
  exit 0
fi
i=0
while :; do
  i=$((i + 1))
  code=$(curl --fail --location --silent --show-error --connect-timeout 30 --speed-limit 1024 --speed-time 60 \
    --continue-at - --write-out '%{http_code}' --output "$dest" "$url")
  rc=$?
  [ "$rc" -eq 0 ] && { echo "downloaded $url in $i attempt(s)"; exit 0; }
  case "$code" in
    403|404|410) echo "$url: HTTP $code" >&2; exit "$rc" ;;
  esac
  case "$rc" in
    # 33: server cannot resume; 36: bad resume offset; 22: HTTP error (416: nothing left to resume).
    22|33|36) if [ -s "$dest" ]; then echo "attempt $i: curl exit $rc (HTTP $code), starting over" >&2; rm -f "$dest"; fi ;;
    *) echo "attempt $i: curl exit $rc (HTTP $code), will resume" >&2 ;;
  esac
  [ "$i" -ge "$attempts" ] && { echo "giving up on $url after $i attempts" >&2; exit "$rc"; }
  sleep $((i * 5))
done
