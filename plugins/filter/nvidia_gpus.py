# Copyright (c) aiws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


from __future__ import annotations

DOCUMENTATION = r"""
name: nvidia_gpus
short_description: List the NVIDIA GPUs in C(lspci -nn) output or in declared PCI IDs
version_added: 0.1.0
author: aiws contributors
description:
  - Finds every NVIDIA GPU function (PCI class VGA compatible controller C(0300), 3D controller C(0302) or
    Display controller C(0380)) in the text of C(lspci -nn), C(lspci -Dnn), C(lspci -n), C(lspci -mmnn) or an
    IOMMU group listing, and classifies it by its PCI device ID.
  - A line without its bus address (C(lspci -nn) output pasted from a forum, a ticket or another tool) still counts
    when it carries a display class code (C([0300]), C([0302]) or C([0380])) and NVIDIA's C([10de:xxxx]) pair; each
    such line is one GPU.
  - HDMI audio, USB, UCSI, NVSwitch and bridge functions are never counted; other vendors (ASPEED or Matrox BMC
    VGA, Intel or AMD graphics) are ignored.
  - Alternatively takes a list of declared PCI IDs such as C(10de:2684) for hosts whose GPUs are not installed yet.
  - The device table is generated from NVIDIA's C(supported-gpus.json) and C(pci.ids) by C(tools/gen_gpu_table.py);
    compute capabilities and other missing facts come from C(data/nvidia_overlay.yml).
  - Odd text never raises; text without NVIDIA GPUs gives an empty list.
options:
  _input:
    description:
      - Text of C(lspci -nn) (for example a registered C(stdout)), or a list of its lines (C(stdout_lines)),
        or a list of declared PCI IDs (C(10de:2684), C(10DE:2684), C(0x2684) or C(2684)). Lines and IDs may be mixed.
    type: raw
    required: true
seealso:
  - plugin: nvidia_stack
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read the PCI devices
  ansible.builtin.command: lspci -nn
  register: aiws_lspci
  changed_when: false

- name: Classify the GPUs
  ansible.builtin.set_fact:
    aiws_gpus: "{{ aiws_lspci.stdout | aiws.workstation.nvidia_gpus }}"
  # [{"slot": "0000:01:00.0", "pci_id": "10de:2684", "name": "NVIDIA GeForce RTX 4090",
  #   "arch": "ada", "compute_capability": "8.9"}]

- name: Plan for GPUs that are not installed yet
  ansible.builtin.set_fact:
    aiws_gpus: "{{ ['10de:2330'] * 8 | aiws.workstation.nvidia_gpus }}"
"""

RETURN = r"""
_value:
  description:
    - One dictionary per NVIDIA GPU function, lspci functions in bus order, then lspci lines without a bus address
      in the order given, then declared IDs in the order given.
    - C(slot) is the PCI address with domain (C(0000:01:00.0)), or null for a line without one or a declared ID.
    - C(pci_id) is C(10de:XXXX) in lower case.
    - C(name) is NVIDIA's marketing name from the table, else the name lspci printed.
    - C(arch) is one of C(kepler), C(maxwell), C(pascal), C(volta), C(turing), C(ampere), C(ada), C(hopper),
      C(blackwell), C(legacy) (Fermi and older) or C(unknown) (an NVIDIA device the table does not know).
    - C(compute_capability) is a string such as C(8.9), or null when unknown.
  type: list
  elements: dictionary
"""

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.aiws.workstation.plugins.plugin_utils import nvidia


def nvidia_gpus(data: Any) -> list[dict[str, Any]]:
    """Return the NVIDIA GPUs found in lspci text, lspci lines or declared PCI IDs."""
    if isinstance(data, str):
        found: list[dict[str, Any]] = nvidia.gpus_from_lines([data], declared_ok=False)
        return found
    if isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray)):
        for index, item in enumerate(data):
            if not isinstance(item, str):
                raise AnsibleFilterError(
                    f"nvidia_gpus expects lspci text or a list of strings (lspci lines or PCI IDs such as '10de:2684');"
                    f" item {index} is {type(item).__name__}"
                )
        mixed: list[dict[str, Any]] = nvidia.gpus_from_lines(data, declared_ok=True)
        return mixed
    raise AnsibleFilterError(
        "nvidia_gpus expects lspci text or a list of strings (lspci lines or PCI IDs such as '10de:2684');"
        f" got {type(data).__name__}"
    )


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"nvidia_gpus": nvidia_gpus}
