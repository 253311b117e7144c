#!/usr/bin/env bash
# Exercise the installed edge runtime and write every output to OUT_DIR, so the emulated aarch64 device and the x86
# host can be compared file by file (deploy/aarch64/compare_outputs.py). The same script runs on both sides.
#
#   exercise.sh VENV_BIN_DIR OUT_DIR
#
# Writes OUT_DIR/steps.tsv (step, status ok|skipped|failed, seconds, detail) plus one output file per step. A step
# whose command is not part of this build yet (e.g. `elvmass analyze` before the runtime lands) is "skipped" with
# that reason; everything else that goes wrong is "failed". Exit status: 1 when any step failed. compare_outputs.py
# treats a skipped step as a failure (unless named with --allow-skip): the smoke test must run the model.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"
# Away from any source checkout: `python -c` puts the working directory first on sys.path, and the installed
# package (not a checkout's edge_runtime/) is what is being tested.
cd "$out"
: > "$out/steps.tsv"
python="$bin/python"
elvmass="$bin/elvmass"
failed=0
# Replay speed of the emulated front-end. Under qemu the runtime cannot drain a 10x stream (the emulator reports
# overruns and every window has a gap), so the emulated device replays in real time, as a real front-end does.
emulate_speed="${ELVMASS_EMULATE_SPEED:-10}"
# The patient of the bundled PTB-XL record (HR06004: man, 28 y, 177 cm, 76 kg), typed in by the operator in live use.
patient=(--age 28 --sex M --height 177 --weight 76)

record_step() {  # name status seconds detail
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4//$'\n'/ }" >> "$out/steps.tsv"
    [ "$2" = failed ] && failed=1
    printf '%-28s %-8s %6ss  %s\n' "$1" "$2" "$3" "${4:0:160}" >&2
}
# The end of a stderr file without onnxruntime's cpuinfo complaints (no /sys in the chroot, by design).
stderr_tail() { grep -v -i cpuinfo "$1" | tail -c 300; }
# run_step NAME OUTFILE COMMAND...: stdout -> OUT/OUTFILE, stderr -> OUT/NAME.stderr
run_step() {
    local name="$1" outfile="$2"; shift 2
    local t0=$SECONDS
    if "$@" > "$out/$outfile" 2> "$out/$name.stderr"; then
        record_step "$name" ok $((SECONDS - t0)) "$outfile"
    else
        record_step "$name" failed $((SECONDS - t0)) "exit $?: $(stderr_tail "$out/$name.stderr")"
    fi
}
has_module() { "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

record="$("$python" -c 'from edge_runtime.assets import PTBXL_RECORD; print(PTBXL_RECORD)')"

# 1. Platform and installed versions (no torch/TensorFlow, and the LiteRT interpreter imports).
run_step platform platform.json "$python" - <<'PY'
import importlib.metadata as md, json, platform, sys
names = ["numpy", "scipy", "onnxruntime", "pyserial", "defusedxml", "ai-edge-litert", "elvmass"]
versions = {}
for name in names:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
heavy = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower() in {"torch", "tensorflow", "matplotlib", "pandas"})
from ai_edge_litert.interpreter import Interpreter  # noqa: F401  (the LiteRT backend must import)
import onnxruntime
json.dump({"machine": platform.machine(), "python": platform.python_version(), "versions": versions,
           "heavy_packages": heavy, "onnxruntime_providers": onnxruntime.get_available_providers()},
          sys.stdout, indent=1, sort_keys=True)
PY

# 2. Record summary (works before the runtime exists).
run_step info info.json "$elvmass" info "$record" --json

# 3. Backend parity on the bundled model files themselves: fixed inputs through every .onnx and .tflite file.
bundle="$("$python" -c 'import edge_runtime.assets as a; print(a.ASSETS_DIR / "model")')"
no_bundle=""
[ -f "$bundle/manifest.json" ] || no_bundle="no bundled demo model (edge_runtime/assets/model) in this build yet"
if [ -z "$no_bundle" ]; then
    run_step model_outputs model_outputs.json "$python" "$here/model_outputs.py" "$bundle"
else
    record_step model_outputs skipped 0 "$no_bundle"
fi

# 4. `elvmass analyze` with each backend and precision (fp32: tight parity; int8: kernels differ by ISA).
for backend in onnxruntime litert; do
    for precision in int8 fp32; do
        step="analyze_${backend}_$precision"
        if [ -n "$no_bundle" ]; then
            record_step "$step" skipped 0 "$no_bundle"
        elif ! has_module edge_runtime.commands.analyze; then
            record_step "$step" skipped 0 "elvmass analyze is not in this build yet"
        else
            run_step "$step" "$step.json" "$elvmass" analyze "$record" --json --backend "$backend" --precision "$precision"
        fi
    done
done

# 5. Live loop: emulated front-end on a pseudo-terminal -> `elvmass run` -> stored result.
if [ -n "$no_bundle" ]; then
    record_step run_loop skipped 0 "$no_bundle"
elif ! has_module edge_runtime.commands.run || ! has_module edge_runtime.commands.emulate; then
    record_step run_loop skipped 0 "elvmass run/emulate are not both in this build yet"
else
    t0=$SECONDS
    rm -f "$out/run.db"
    rm -f "$out/emulate.stdout"
    "$elvmass" emulate "$record" --pty --speed "$emulate_speed" --loop > "$out/emulate.stdout" 2> "$out/emulate.stderr" &
    emulator_pid=$!
    pty=""
    for _ in $(seq 1200); do  # the emulator prints the pty path as its first stdout line (up to 120 s emulated)
        pty="$(head -n 1 "$out/emulate.stdout" 2>/dev/null)"
        { [ -n "$pty" ] || ! kill -0 "$emulator_pid" 2>/dev/null; } && break
        sleep 0.1
    done
    if [ -z "$pty" ] || [ ! -e "$pty" ]; then
        record_step run_loop failed $((SECONDS - t0)) "emulator gave no pty path: $(stderr_tail "$out/emulate.stderr")"
    elif timeout 600 "$elvmass" run --port "$pty" "${patient[@]}" --backend onnxruntime --quiet --json \
            --max-estimates 1 --db "$out/run.db" > "$out/run_loop.json" 2> "$out/run_loop.stderr"; then
        record_step run_loop ok $((SECONDS - t0)) "run_loop.json"
        if has_module edge_runtime.commands.results; then  # the stored result, read back from SQLite
            run_step run_results run_results.json "$elvmass" results --db "$out/run.db" --format json
        fi
    else
        record_step run_loop failed $((SECONDS - t0)) "elvmass run exit $?: $(stderr_tail "$out/run_loop.stderr")"
    fi
    kill "$emulator_pid" 2>/dev/null
    wait "$emulator_pid" 2>/dev/null
fi

# 6. Operator station: start `elvmass station` (no acquisition: its front-end path does not exist) and fetch its
#    pages over HTTP. The output holds status codes and page titles only (tokens and times differ per run).
if ! has_module edge_runtime.commands.station || ! has_module starlette; then
    record_step station_pages skipped 0 "elvmass station (and its station extra) is not in this build yet"
else
    t0=$SECONDS
    station_port="${ELVMASS_STATION_PORT:-18080}"
    rm -f "$out/station.db"
    "$elvmass" station --port "$station_port" --device "$out/no-such-tty" --db "$out/station.db" \
        > "$out/station.stdout" 2> "$out/station.stderr" &
    station_pid=$!
    if "$python" - "$station_port" > "$out/station_pages.json" 2> "$out/station_pages.stderr" <<'PY'
import json, re, sys, time, urllib.error, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 600  # under qemu loading the model takes a while
while True:
    try:
        urllib.request.urlopen(base + "/api/state", timeout=5).read()
        break
    except (urllib.error.URLError, OSError):
        if time.monotonic() > deadline:
            raise SystemExit("the station did not answer")
        time.sleep(1)
pages = {}
for path in ("/patient", "/acquire", "/results", "/device", "/static/station.css", "/static/trace.js", "/no-such-page"):
    try:
        response = urllib.request.urlopen(base + path, timeout=60)
        status, body = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode("utf-8", "replace")
    title = re.search(r"<title>([^<]*)</title>", body)
    pages[path] = {"status": status, "title": title.group(1) if title else None}
json.dump(pages, sys.stdout, indent=1, sort_keys=True)
ok = all(v["status"] == 200 for k, v in pages.items() if k != "/no-such-page") and pages["/no-such-page"]["status"] == 404
sys.exit(0 if ok else 1)
PY
    then
        record_step station_pages ok $((SECONDS - t0)) "station_pages.json"
    else
        record_step station_pages failed $((SECONDS - t0)) "exit $?: $(stderr_tail "$out/station_pages.stderr") $(stderr_tail "$out/station.stderr")"
    fi
    kill "$station_pid" 2>/dev/null
    wait "$station_pid" 2>/dev/null
fi
exit $failed
