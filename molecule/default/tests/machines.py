"""The scenario's machines (molecule/default/molecule.yml) as the tests need to know them.

One row per hostname: the distribution, the declared GPU, the CUDA toolkits and cuDNN the inventory
asks for, and, on Ubuntu, the kernel flavour and whether the simulated archive carries Canonical's
prebuilt NVIDIA modules for it (`prebuilt`) or the driver's module must come from DKMS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

_TABLE = Path(__file__).resolve().parents[3] / "plugins" / "filter" / "data" / "nvidia_cudnn.yml"
_RELEASES = yaml.safe_load(_TABLE.read_text())["releases"]
# The plan picks 9.10 for Pascal (its last cuDNN) and the newest cuDNN for CUDA 12 for Ada.
NEWEST_CUDNN = max(_RELEASES, key=lambda v: tuple(int(p) for p in v.split(".")))


@dataclass(frozen=True)
class Machine:
    hostname: str
    distro: str       # debian12 | ubuntu22.04 | ubuntu24.04
    gpu: str          # declared PCI ID
    gpu_name: str
    arch: str
    cuda: str         # the plan's toolkit (aiws_cuda_version)
    cuda_extra: tuple[str, ...]
    cudnn: str
    kernel: str = ""  # Ubuntu: the image's kernel metapackage
    prebuilt: bool = False

    @property
    def samples_build(self) -> str:
        """How the planned cuDNN's samples build: a Makefile per sample up to 9.10, CMake after."""
        return str((_RELEASES[self.cudnn].get("samples") or {}).get("build", "make"))

    @property
    def family(self) -> str:
        return self.distro.rstrip("0123456789.")

    @property
    def container(self) -> str:
        return f"{self.hostname}-{os.environ.get('AIWS_TEST_SUFFIX') or 'main'}"


ADA = ("10de:2684", "NVIDIA GeForce RTX 4090", "ada")
PASCAL = ("10de:1b80", "NVIDIA GeForce GTX 1080", "pascal")

MACHINES = {m.hostname: m for m in [
    Machine("aiws-ada", "debian12", *ADA, "12.4", ("12.6",), NEWEST_CUDNN),
    Machine("aiws-pascal", "debian12", *PASCAL, "12.4", ("12.6",), "9.10"),
    Machine("aiws-u22-pascal", "ubuntu22.04", *PASCAL, "12.4", ("12.6",), "9.10", "linux-generic-hwe-22.04", False),
    Machine("aiws-u24-ada", "ubuntu24.04", *ADA, "12.6", (), NEWEST_CUDNN, "linux-generic", True),
]}


def machine(host) -> Machine:
    """The Machine of a testinfra host (its hostname inside the container)."""
    return MACHINES[host.check_output("hostname").strip()]
