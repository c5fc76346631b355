#!/usr/bin/env bash
# Compile (compile) or build and run (run) a minimal CUDA program in a scratch directory,
# from a fresh login shell, so PATH comes from /etc/profile and /etc/profile.d as a user gets it.
#   cuda-sample.sh compile|run [nvcc flags...]
# Prints each step's output followed by "### <step> rc=<n>"; leaves nothing behind.
if [ -z "${AIWS_LOGIN_SHELL:-}" ]; then
  exec env -i HOME="${HOME:-/root}" USER="$(id -un)" LOGNAME="$(id -un)" LANG=C.UTF-8 TERM=dumb \
    AIWS_LOGIN_SHELL=1 bash -l "$0" "$@"
fi
mode=${1:-compile}
shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/aiws-cuda.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1
cat >aiws_check.cu <<'CU'
// aiws verification: one tiny kernel on every visible GPU.
#include <cstdio>
__global__ void add_index(int *x) { x[threadIdx.x] += threadIdx.x; }
int main() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) { std::printf("cudaGetDeviceCount: %s\n", cudaGetErrorString(err)); return 1; }
  for (int d = 0; d < n; ++d) {
    int host[32] = {0};
    int *dev = nullptr;
    cudaSetDevice(d);
    if (cudaMalloc(&dev, sizeof host) != cudaSuccess) { std::printf("device %d: cudaMalloc failed\n", d); return 1; }
    cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice);
    add_index<<<1, 32>>>(dev);
    err = cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost);
    cudaFree(dev);
    if (err != cudaSuccess || host[31] != 31) { std::printf("device %d: kernel failed: %s\n", d, cudaGetErrorString(err)); return 1; }
  }
  std::printf("devices=%d\n", n);
  return 0;
}
CU
if [ "$mode" = compile ]; then
  # shellcheck disable=SC2068 # the flags are separate words on purpose
  nvcc $@ -c aiws_check.cu -o aiws_check.o 2>&1
  echo "### compile rc=$?"
else
  # shellcheck disable=SC2068
  nvcc $@ aiws_check.cu -o aiws_check 2>&1
  rc=$?
  echo "### build rc=$rc"
  if [ "$rc" -eq 0 ]; then
    ./aiws_check 2>&1
    echo "### run rc=$?"
  fi
fi
exit 0
