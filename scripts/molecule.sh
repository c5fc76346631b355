#!/usr/bin/env bash
# Run a Molecule command against the container scenario with everything it needs:
# the podman settings, the locally built images, the test fixtures and their servers
# (scripts/fixtures-env.sh).
#
#   scripts/molecule.sh               # molecule test (create, converge, idempotence, verify, destroy)
#   scripts/molecule.sh converge      # any molecule subcommand
#   scripts/molecule.sh converge --platform-name aiws-u24-ada-main   # one machine
#
# The scenario converges Debian 12, Ubuntu 22.04 and Ubuntu 24.04 machines (molecule/default/molecule.yml);
# Ubuntu runs on the simulated archive of tests/fixtures/fx_ubuntu_archive.py.
# A clean run prints no warnings: when ansible printed a [WARNING], the command fails and lists them.
set -euo pipefail
# shellcheck source=scripts/fixtures-env.sh
. "$(dirname "$0")/fixtures-env.sh"

# The machines are reached over ssh, as a lab reaches its workstations (pipelining and a persistent
# connection, as ansible.cfg sets them; molecule.yml): each runs sshd on its own loopback port, as
# the containers share the host network — AIWS_SCENARIO_SSH_PORT (default: the apt mirror's port
# + 20) and the next three — and lets root in with the test cache's key.
export AIWS_SCENARIO_SSH_PORT="${AIWS_SCENARIO_SSH_PORT:-$((AIWS_APT_MIRROR_PORT + 20))}"
export AIWS_TEST_SSH_KEY="$AIWS_TEST_CACHE/ssh/id_ed25519"
hosts=(aiws-ada aiws-pascal aiws-u22-pascal aiws-u24-ada)
suffix=${AIWS_TEST_SUFFIX:-main}
if [ ! -e "$AIWS_TEST_SSH_KEY" ]; then
  mkdir -p "$(dirname "$AIWS_TEST_SSH_KEY")" && chmod 0700 "$(dirname "$AIWS_TEST_SSH_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C "aiws-test" -f "$AIWS_TEST_SSH_KEY"
fi
# The inventory's host_vars (molecule.yml links them): they override the podman connection that
# molecule's driver writes into the inventory. The host keys are the image's, made with each image
# build, so they are not recorded (loopback only).
host_vars="$AIWS_TEST_CACHE/scenario-$suffix/host_vars"
rm -rf "$host_vars" && mkdir -p "$host_vars"
for i in "${!hosts[@]}"; do
  printf '%s\n' "# scripts/molecule.sh: ${hosts[i]} over ssh" "ansible_connection: ssh" "ansible_host: 127.0.0.1" \
    "ansible_port: $((AIWS_SCENARIO_SSH_PORT + i))" "ansible_user: root" \
    "ansible_ssh_private_key_file: $AIWS_TEST_SSH_KEY" \
    "ansible_ssh_extra_args: -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR -o IdentitiesOnly=yes" \
    > "$host_vars/${hosts[i]}-$suffix.yml"
done

# Each machine's /sys/firmware: an EFI variable store with Secure Boot off, fresh for every scenario
# that creates the machines (tests flip it by writing SecureBoot-<guid> there; molecule.yml mounts it),
# and its sshd settings (mounted at /etc/ssh/aiws-test; the image's ssh.service starts only with them).
case "${1:-test}" in
  test|create)
    for i in "${!hosts[@]}"; do
      machine="$AIWS_TEST_CACHE/machines/${hosts[i]}-$suffix"
      efivars="$machine/firmware/efi/efivars"
      rm -rf "$machine"
      mkdir -p "$efivars" "$machine/ssh"
      printf '\006\000\000\000\000' > "$efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
      printf '%s\n' "Port $((AIWS_SCENARIO_SSH_PORT + i))" "ListenAddress 127.0.0.1" \
        "PermitRootLogin prohibit-password" "PasswordAuthentication no" "KbdInteractiveAuthentication no" \
        "AuthorizedKeysFile /etc/ssh/aiws-test/authorized_keys" > "$machine/ssh/sshd.conf"
      install -m 0600 "$AIWS_TEST_SSH_KEY.pub" "$machine/ssh/authorized_keys"
    done
    ;;
esac

log="$AIWS_TEST_CACHE/molecule-${AIWS_TEST_SUFFIX:-main}.log"
set +e
molecule "${@:-test}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 0 ] && grep -q '^\[WARNING\]' "$log"; then
  echo "molecule.sh: ansible printed warnings; a clean run prints none:" >&2
  grep '^\[WARNING\]' "$log" | sort | uniq -c >&2
  exit 1
fi
exit "$rc"
