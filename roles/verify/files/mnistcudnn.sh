#!/usr/bin/env bash
# Build cuDNN's mnistCUDNN sample the way the installed samples ship it, in a scratch directory,
# and run it, from a fresh login shell (PATH from /etc/profile.d, as a user gets it).
#   mnistcudnn.sh /usr/src/cudnn_samples_v9 [CUDA architectures for CMake, e.g. "89;120"]
# Two layouts (libcudnn9-samples):
#   - a Makefile in every sample (cuDNN 9.0 to 9.10): `make` in mnistCUDNN;
#   - only a top-level CMakeLists.txt (newer): CMake configures the tree, builds target mnistCUDNN,
#     which does add_subdirectory(FreeImage) and so expects FreeImage beside the sample; the
#     distribution's libfreeimage-dev is handed to it through a small FreeImage/CMakeLists.txt.
# A Makefile wins when both are there (what NVIDIA's "Verifying the Install" steps use).
# Prints each step's output followed by "### <step> rc=<n>"; when the build system the samples
# need is missing it prints why and "### skip rc=0". Leaves nothing behind.
if [ -z "${AIWS_LOGIN_SHELL:-}" ]; then
  exec env -i HOME="${HOME:-/root}" USER="$(id -un)" LOGNAME="$(id -un)" LANG=C.UTF-8 TERM=dumb \
    AIWS_LOGIN_SHELL=1 bash -l "$0" "$@"
fi
samples=${1:-/usr/src/cudnn_samples_v9}
archs=${2:-}
if [ ! -d "$samples/mnistCUDNN" ]; then
  echo "$samples/mnistCUDNN does not exist"
  echo "### missing rc=1"
  exit 0
fi
skip() {
  echo "$*"
  echo "### skip rc=0"
  exit 0
}
dir=$(mktemp -d "${TMPDIR:-/tmp}/aiws-cudnn.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cp -r "$samples" "$dir/samples" || exit 1
tree="$dir/samples"

if [ -f "$tree/mnistCUDNN/Makefile" ]; then
  command -v make >/dev/null 2>&1 \
    || skip "$samples/mnistCUDNN builds with make (a per-sample Makefile), and make is not installed: install build-essential"
  cd "$tree/mnistCUDNN" || exit 1
  {
    echo "build system: make (mnistCUDNN/Makefile)"
    make clean >/dev/null 2>&1
    make 2>&1
  }
  rc=$?
  echo "### build rc=$rc"
  if [ "$rc" -eq 0 ]; then
    ./mnistCUDNN 2>&1
    echo "### run rc=$?"
  fi
  exit 0
fi

[ -f "$tree/CMakeLists.txt" ] \
  || skip "$samples has neither mnistCUDNN/Makefile nor a top-level CMakeLists.txt: a samples layout this check does not know how to build"
need=$(sed -n 's/^[[:space:]]*cmake_minimum_required[[:space:]]*([[:space:]]*VERSION[[:space:]]*\([0-9][0-9.]*\).*/\1/Ip' \
  "$tree/CMakeLists.txt" | head -n 1)
command -v cmake >/dev/null 2>&1 \
  || skip "$samples builds with CMake ${need:+$need or newer }(a top-level CMakeLists.txt, no per-sample Makefile), and cmake is not installed: install cmake${need:+ $need or newer} (the cudnn stage does where the distribution has one new enough)"
have=$(cmake --version 2>/dev/null | sed -n '1s/^cmake version \([0-9][0-9.]*\).*/\1/p')
if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "${have:-0}" | sort -V | head -n 1)" != "$need" ]; then
  skip "$samples builds with CMake $need or newer (cmake_minimum_required in its CMakeLists.txt), and this host's cmake is ${have:-unknown}: install CMake $need or newer to run this check"
fi
command -v make >/dev/null 2>&1 \
  || skip "CMake's build step here needs make, which is not installed: install build-essential"

# FreeImage beside the sample: the distribution's library (libfreeimage-dev) as the target it links.
if grep -qi 'add_subdirectory[[:space:]]*([[:space:]]*FreeImage' "$tree/mnistCUDNN/CMakeLists.txt" 2>/dev/null \
   && [ ! -e "$tree/mnistCUDNN/FreeImage/CMakeLists.txt" ]; then
  mkdir -p "$tree/mnistCUDNN/FreeImage"
  cat > "$tree/mnistCUDNN/FreeImage/CMakeLists.txt" <<'EOF'
# aiws: FreeImage from the distribution (libfreeimage-dev), where the cuDNN samples expect a FreeImage tree.
find_path(AIWS_FREEIMAGE_INCLUDE_DIR FreeImage.h)
find_library(AIWS_FREEIMAGE_LIBRARY NAMES freeimage FreeImage)
if(NOT AIWS_FREEIMAGE_INCLUDE_DIR OR NOT AIWS_FREEIMAGE_LIBRARY)
  message(FATAL_ERROR "FreeImage.h or libfreeimage not found: install libfreeimage-dev")
endif()
add_library(FreeImage INTERFACE)
target_include_directories(FreeImage INTERFACE ${AIWS_FREEIMAGE_INCLUDE_DIR})
target_link_libraries(FreeImage INTERFACE ${AIWS_FREEIMAGE_LIBRARY})
EOF
fi

args=(-S "$tree" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release)
nvcc=$(command -v nvcc 2>/dev/null)
if [ -n "$nvcc" ]; then
  # The toolkit a login shell finds first, as for the user (/usr/local/cuda-X.Y/bin/nvcc -> /usr/local/cuda-X.Y).
  args+=("-DCUDAToolkit_ROOT=$(dirname "$(dirname "$(readlink -f "$nvcc")")")" "-DCMAKE_CUDA_COMPILER=$nvcc")
fi
[ -n "$archs" ] && args+=("-DCMAKE_CUDA_ARCHITECTURES=$archs")
{
  echo "build system: cmake $have (top-level CMakeLists.txt)"
  cmake "${args[@]}" 2>&1 && cmake --build "$dir/build" --target mnistCUDNN -j "$(nproc)" 2>&1
}
rc=$?
echo "### build rc=$rc"
if [ "$rc" -eq 0 ]; then
  exe=$(find "$dir/build" -type f -name mnistCUDNN -perm -u+x | head -n 1)
  # Run where the sample's CMake test runs it: its source directory (it reads data/ from there).
  cd "$tree/mnistCUDNN" && "$exe" 2>&1
  echo "### run rc=$?"
fi
exit 0
