#!/bin/sh
# Print how many NVIDIA display functions (vendor 0x10de, PCI class 0x03xxxx) this machine has,
# read from sysfs (no lspci needed). 0 on a machine without NVIDIA GPUs.
n=0
for dev in /sys/bus/pci/devices/*; do
  [ -r "$dev/vendor" ] && [ -r "$dev/class" ] || continue
  [ "$(cat "$dev/vendor")" = 0x10de ] || continue
  case "$(cat "$dev/class")" in 0x03*) n=$((n + 1)) ;; esac
done
echo "$n"
