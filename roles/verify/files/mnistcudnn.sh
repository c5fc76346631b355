#!/bin/bash
# Build cuDNN's mnistCUDNN sample from the installed samples in a scratch directory and run it,
# from a fresh login shell (PATH from /etc/profile.d, as a user gets it).
#   mnistcudnn.sh /usr/src/cudnn_samples_v9
# Prints each step's output followed by "### <step> rc=<n>"; leaves nothing behind.
if [ -z "${AIWS_LOGIN_SHELL:-}" ]; then
  exec env -i HOME="${HOME:-/root}" USER="$(id -un)" LOGNAME="$(id -un)" LANG=C.UTF-8 TERM=dumb \
    AIWS_LOGIN_SHELL=1 bash -l "$0" "$@"
fi
samples=${1:-/usr/src/cudnn_samples_v9}
if [ ! -d "$samples/mnistCUDNN" ]; then
  echo "$samples/mnistCUDNN does not exist"
  echo "### missing rc=1"
  exit 0
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/aiws-cudnn.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cp -r "$samples" "$dir/samples" && cd "$dir/samples/mnistCUDNN" || exit 1
make clean >/dev/null 2>&1
make 2>&1
rc=$?
echo "### build rc=$rc"
if [ "$rc" -eq 0 ]; then
  ./mnistCUDNN 2>&1
  echo "### run rc=$?"
fi
exit 0
