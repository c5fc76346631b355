#!/bin/sh
# Print PCI functions in `lspci -Dnn` form. Uses lspci when it is installed, else sysfs,
# which every Linux host has (minimal images often lack pciutils).
if command -v lspci >/dev/null 2>&1; then
  exec lspci -Dnn
fi
for dev in /sys/bus/pci/devices/*; do
  [ -r "$dev/class" ] || continue
  class=$(cut -c3-6 "$dev/class")
  vendor=$(cut -c3- "$dev/vendor")
  device=$(cut -c3- "$dev/device")
  case "$class" in
    0300) label="VGA compatible controller" ;;
    0302) label="3D controller" ;;
    0380) label="Display controller" ;;
    0403) label="Audio device" ;;
    *) label="Class $class" ;;
  esac
  printf '%s %s [%s]: Vendor %s Device %s [%s:%s]\n' \
    "${dev##*/}" "$label" "$class" "$vendor" "$device" "$vendor" "$device"
done
