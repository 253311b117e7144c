#!/usr/bin/env bash
# Chromium full-screen on the device's own display, showing the operator station that the elvmass service serves.
# Started by the desktop session of the kiosk user at log-in (Raspberry Pi OS bookworm; docs/station.md, "Kiosk").
# If Chromium exits or crashes it is started again; the station keeps the acquisition state, so the screen resumes.
set -u
url="${ELVMASS_STATION_URL:-http://127.0.0.1:8080/}"
browser="$(command -v chromium-browser || command -v chromium || true)"
if [ -z "$browser" ]; then
    echo "elvmass-kiosk: no chromium-browser or chromium on PATH (Raspberry Pi OS with desktop ships it)" >&2
    exit 1
fi
# The service may still be loading the model at boot: wait up to 2 minutes for the station to answer.
for _ in $(seq 120); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "${url}api/state" \
        >/dev/null 2>&1 && break
    sleep 1
done
profile="${XDG_RUNTIME_DIR:-/tmp}/elvmass-kiosk-profile"
while true; do
    rm -rf "$profile"  # a fresh profile each start: no "restore pages?" bubble, nothing cached (pages are no-store)
    "$browser" --kiosk --noerrdialogs --disable-infobars --no-first-run --disable-session-crashed-bubble \
        --disable-features=Translate --overscroll-history-navigation=0 --disable-pinch --password-store=basic \
        --kiosk-printing --check-for-update-interval=31536000 --user-data-dir="$profile" "$url"
    sleep 2
done
