#!/bin/sh
# Facts that explain why nvidia-smi cannot talk to the driver, as key=value lines.
# Read-only: sysfs, /proc, mokutil when installed.
loaded() { if [ -d "/sys/module/$1" ]; then echo 1; else echo 0; fi; }
echo "nvidia_loaded=$(loaded nvidia)"
echo "nouveau_loaded=$(loaded nouveau)"
if command -v mokutil >/dev/null 2>&1; then
  echo "secure_boot=$(mokutil --sb-state 2>&1 | head -n 1)"
else
  # The SecureBoot EFI variable: 4 attribute bytes, then 1 = enabled.
  var=
  for f in /sys/firmware/efi/efivars/SecureBoot-*; do
    if [ -e "$f" ]; then var=$f; break; fi
  done
  if [ -n "$var" ] && [ "$(od -An -t u1 -j 4 -N 1 "$var" 2>/dev/null | tr -d ' ')" = 1 ]; then
    echo "secure_boot=SecureBoot enabled"
  elif [ -n "$var" ]; then
    echo "secure_boot=SecureBoot disabled"
  else
    echo "secure_boot=unknown (no EFI variables)"
  fi
fi
if [ -e /var/run/reboot-required ]; then echo "reboot_required=1"; else echo "reboot_required=0"; fi
echo "kernel=$(uname -r)"
