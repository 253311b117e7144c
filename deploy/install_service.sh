#!/bin/sh
# Service mode on the device (run as root after install.sh): service user, clinic config, systemd unit,
# udev rule for /dev/elvmass-ecg, log rotation. Idempotent; never overwrites an existing /etc/elvmass/elvmass.toml.
#   sh install_service.sh [--prefix /opt/elvmass]      (the prefix given to install.sh)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
prefix=/opt/elvmass
[ "${1:-}" = --prefix ] && prefix="$2"
[ "$(id -u)" = 0 ] || { echo "install_service.sh: run as root" >&2; exit 1; }
[ -x "$prefix/venv/bin/elvmass" ] || { echo "install_service.sh: no $prefix/venv/bin/elvmass (run install.sh first)" >&2; exit 1; }

id elvmass >/dev/null 2>&1 || useradd --system --home-dir /var/lib/elvmass --no-create-home \
    --shell /usr/sbin/nologin --groups dialout elvmass
install -d -m 0755 /etc/elvmass
[ -e /etc/elvmass/elvmass.toml ] || install -m 0644 "$here/elvmass.toml" /etc/elvmass/elvmass.toml
# Refuse a config the runtime would refuse, now rather than at the first boot.
"$prefix/venv/bin/python" -c 'import sys; from edge_runtime.config import load_config; load_config(sys.argv[1])' \
    /etc/elvmass/elvmass.toml
sed "s#/opt/elvmass/venv#$prefix/venv#g" "$here/elvmass.service" > /etc/systemd/system/elvmass.service
chmod 0644 /etc/systemd/system/elvmass.service
install -d -m 0755 /etc/udev/rules.d /etc/logrotate.d
install -m 0644 "$here/99-elvmass.rules" /etc/udev/rules.d/99-elvmass.rules
install -m 0644 "$here/logrotate-elvmass" /etc/logrotate.d/elvmass
# Kiosk launcher for the local display (enabled per desktop user: docs/station.md, "Kiosk").
install -d -m 0755 "$prefix/kiosk"
install -m 0755 "$here/elvmass-kiosk.sh" "$prefix/kiosk/elvmass-kiosk.sh"
install -m 0644 "$here/elvmass-kiosk.desktop" "$prefix/kiosk/elvmass-kiosk.desktop"

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    udevadm control --reload && udevadm trigger --subsystem-match=tty
    systemctl enable --now elvmass
    echo "elvmass service enabled and started (operator station on http://127.0.0.1:8080/); logs: /var/log/elvmass/elvmass.log"
else
    echo "systemd is not running here: files installed; later run 'systemctl enable --now elvmass'"
fi
