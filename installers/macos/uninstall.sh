#!/bin/sh
# Remove the devposture agent from this Mac (Jamf, Intune or by hand):
#
#     sudo sh /opt/devposture-agent/uninstall.sh            # the program and its daemon
#     sudo sh /opt/devposture-agent/uninstall.sh --purge    # and configuration, state, logs
#
# The package installs this script there; it is also installers/macos/uninstall.sh.
# The state (the device's key and certificates, unsent reports) is kept unless --purge, as the
# MSI keeps it unless PURGE=1 and the .deb unless purged: reinstalling then continues as the
# same device. The agent's own `cleanup` decides what --purge deletes (agent/install_setup.py).
set -e

label=com.devposture.agent
# Tests only: where the files are, instead of this Mac's startup disk.
root=${DEVPOSTURE_PKG_TEST_ROOT:-}
root=${root%/}
config="$root/Library/Application Support/devposture"

# Jamf runs a script with the volume, the computer's name and the user first, and its own
# parameters after: any argument not starting with "--" is one of those, and ignored.
purge=0
for argument in "$@"; do
    case "$argument" in
        --purge) purge=1 ;;
        --*) echo "usage: sudo sh $0 [--purge] (not $argument)" >&2; exit 2 ;;
    esac
done
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    echo "devposture: run it as root: sudo sh $0 $*" >&2
    exit 1
fi

# Stop the daemon (launchd sends SIGTERM, waits its ExitTimeOut; the agent stops within 1 s).
if launchctl print "system/$label" >/dev/null 2>&1; then
    launchctl bootout "system/$label" || echo "devposture: $label had stopped already"
fi

agent="$root/opt/devposture-agent/bin/devposture-agent"
if [ -x "$agent" ]; then
    "$agent" cleanup --installer pkg --config-folder "$config" --state "$config/state" \
        --purge="$purge"
elif [ "$purge" = 1 ]; then
    rm -rf "$config"
    echo "devposture: deleted $config"
fi
if [ "$purge" = 1 ]; then
    rm -rf "$root/Library/Logs/devposture"
fi

rm -f "$root/Library/LaunchDaemons/$label.plist"
rm -rf "$root/opt/devposture-agent"
# The installer's receipt, so that the Mac no longer lists the package as installed.
pkgutil --volume "${root:-/}" --forget com.devposture.agent.pkg >/dev/null 2>&1 || true
echo "devposture: the agent is removed"
exit 0
