"""Service-mode files (deploy/): they parse, and they agree with each other and with the runtime's config keys."""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from conftest import REPO_ROOT
from edge_runtime.config import load_config

DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "elvmass.service"
UDEV_RULES = DEPLOY / "udev" / "99-elvmass.rules"
CLINIC_CONFIG = DEPLOY / "elvmass.toml"
LOGROTATE = DEPLOY / "logrotate" / "elvmass"
REQUIREMENTS = DEPLOY / "aarch64" / "requirements-edge.txt"
# Interface 6: the clinic config keys the runtime reads.
INTERFACE_6_KEYS = {
    "mains_hz", "lvh_threshold_male_g_m2", "lvh_threshold_female_g_m2", "storage_path",
    "bundle_path", "port", "backend", "precision",
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as {section: {key: [values...]}} (keys may repeat); fails on any line it cannot read."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: not 'Key=value' inside a section: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UDEV_TOKEN = re.compile(r'\s*([A-Za-z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def parse_udev_rules(path: Path) -> list[list[tuple[str, str, str]]]:
    """Each rule line as [(key, operator, value), ...]; fails on a line that is not all well-formed tokens."""
    rules = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens, position = [], 0
        while position < len(line):
            match = UDEV_TOKEN.match(line, position)
            assert match, f"{path.name}:{number}: cannot parse at column {position}: {line[position:]!r}"
            tokens.append(match.groups())
            position = match.end()
        rules.append(tokens)
    return rules


def parse_logrotate(path: Path) -> dict[str, list[str]]:
    """logrotate stanzas as {path pattern: [directive lines]}."""
    stanzas, current = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            current = stanzas.setdefault(line[:-1].strip(), [])
        elif line == "}":
            current = None
        else:
            assert current is not None, f"directive outside a stanza: {raw!r}"
            current.append(line)
    return stanzas


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT)


@pytest.fixture(scope="module")
def clinic_config() -> dict:
    with CLINIC_CONFIG.open("rb") as handle:
        return tomllib.load(handle)


def exec_start(unit) -> list[str]:
    (command,) = unit["Service"]["ExecStart"]
    return shlex.split(command)


def test_clinic_config_has_exactly_the_interface_keys(clinic_config):
    assert set(clinic_config) == INTERFACE_6_KEYS


def test_clinic_config_is_accepted_by_the_runtime_reader(clinic_config):
    config = load_config(CLINIC_CONFIG)
    assert config.problems() == []
    assert config.mains_hz == clinic_config["mains_hz"]
    assert (config.lvh_threshold_male_g_m2, config.lvh_threshold_female_g_m2) == (72.0, 55.0)


def test_unit_runs_the_installed_cli_with_the_clinic_config(unit):
    argv = exec_start(unit)
    assert argv[0] == "/opt/elvmass/venv/bin/elvmass"
    assert argv[1] == "station"  # the operator station: a patient is entered for every acquisition
    assert argv[argv.index("--config") + 1] == "/etc/elvmass/elvmass.toml"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert unit["Service"]["User"] == ["elvmass"]
    assert unit["Service"]["Restart"] == ["on-failure"]
    # Offline: loopback only (the kiosk browser on this machine), through systemd's IP firewall.
    assert unit["Service"]["IPAddressAllow"] == ["localhost"]
    assert unit["Service"]["IPAddressDeny"] == ["any"]
    assert "PrivateNetwork" not in unit["Service"]  # would hide the station from the local browser


def test_unit_arguments_are_options_of_elvmass_station_and_bind_locally(unit):
    import argparse

    from edge_runtime.commands import station as station_command
    from edge_runtime.station.security import is_loopback

    parser = argparse.ArgumentParser(prog="elvmass station")
    station_command.add_arguments(parser)
    args = parser.parse_args(exec_start(unit)[2:])  # exits (SystemExit) on an unknown option
    assert is_loopback(args.host) and not args.demo


def test_kiosk_script_opens_the_port_the_unit_serves(unit):
    argv = exec_start(unit)
    port = argv[argv.index("--port") + 1]
    kiosk = (DEPLOY / "kiosk" / "elvmass-kiosk.sh").read_text()
    assert f"http://127.0.0.1:{port}/" in kiosk and "--kiosk" in kiosk
    assert subprocess.run(["bash", "-n", str(DEPLOY / "kiosk" / "elvmass-kiosk.sh")]).returncode == 0


def test_storage_and_logs_live_in_the_directories_systemd_creates(unit, clinic_config):
    service = unit["Service"]
    (state_dir,) = service["StateDirectory"]
    assert Path(clinic_config["storage_path"]).parent == Path("/var/lib") / state_dir
    (logs_dir,) = service["LogsDirectory"]
    for stream in ("StandardOutput", "StandardError"):
        (target,) = service[stream]
        assert target.startswith("append:"), f"{stream} must append to a file that logrotate rotates"
        assert Path(target.removeprefix("append:")).parent == Path("/var/log") / logs_dir
    # ProtectSystem=strict makes everything read-only except the State/Logs directories above.
    assert service["ProtectSystem"] == ["strict"]


def test_logrotate_rotates_the_service_log_without_reopening_it(unit):
    stanzas = parse_logrotate(LOGROTATE)
    log_file = unit["Service"]["StandardOutput"][0].removeprefix("append:")
    matching = [pattern for pattern in stanzas if fnmatch.fnmatch(log_file, pattern)]
    assert len(matching) == 1, f"{log_file} must match exactly one logrotate stanza, got {matching}"
    directives = stanzas[matching[0]]
    # systemd keeps the appended file open: rotate by copy + truncate, as the service user.
    assert "copytruncate" in directives
    assert f"su {unit['Service']['User'][0]} {unit['Service']['Group'][0]}" in directives
    assert any(d.startswith("rotate ") and int(d.split()[1]) > 0 for d in directives)


def test_udev_rule_gives_the_configured_port_to_the_service_group(unit, clinic_config):
    rules = parse_udev_rules(UDEV_RULES)
    assert len(rules) == 1
    tokens = {(key, op): value for key, op, value in rules[0]}
    assert tokens[("SUBSYSTEM", "==")] == "tty"
    assert re.fullmatch(r"[0-9a-f]{4}", tokens[("ATTRS{idVendor}", "==")])
    assert re.fullmatch(r"[0-9a-f]{4}", tokens[("ATTRS{idProduct}", "==")])
    assert "/dev/" + tokens[("SYMLINK", "+=")] == clinic_config["port"]
    assert tokens[("GROUP", "=")] in unit["Service"]["SupplementaryGroups"]
    assert tokens[("MODE", "=")] == "0660"


def test_udev_parser_rejects_a_malformed_rule(tmp_path):
    broken = tmp_path / "broken.rules"
    broken.write_text('SUBSYSTEM=="tty", ATTRS{idVendor}=="0483" SYMLINK+="x\n')
    with pytest.raises(AssertionError, match="cannot parse"):
        parse_udev_rules(broken)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path):
    # Point ExecStart at an executable that exists here; the real path exists only on the device.
    unit_copy = tmp_path / "elvmass.service"
    unit_copy.write_text(UNIT.read_text().replace("/opt/elvmass/venv/bin/elvmass", shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit_copy)], capture_output=True, text=True)
    complaints = [line for line in result.stderr.splitlines() if "elvmass.service" in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_edge_requirements_are_exact_pins_of_the_edge_dependencies():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{line}: the device kit pins exact versions"
            pins[requirement.name.lower()] = specifier.version
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    declared = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["litert"]]
    for requirement in declared:
        name = requirement.name.lower()
        assert name in pins, f"{name} (a device dependency in pyproject.toml) is not pinned for the device"
        assert requirement.specifier.contains(pins[name]), f"pin {name}=={pins[name]} violates {requirement}"
    assert not {"torch", "tensorflow", "tflite-runtime", "matplotlib", "pandas"} & set(pins)


def test_model_cost_counts_per_beat_macs_of_a_known_graph(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper  # lazy: heavy

    spec = importlib.util.spec_from_file_location("model_cost", DEPLOY / "model_cost.py")
    model_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_cost)

    conv_weight = numpy_helper.from_array(np.ones((16, 12, 5), np.float32), "conv_w")
    dense_weight = numpy_helper.from_array(np.ones((16, 1), np.float32), "dense_w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["beat", "conv_w"], ["features"], strides=[4], pads=[2, 2]),
            helper.make_node("ReduceMean", ["features"], ["pooled"], axes=[2], keepdims=0),
            helper.make_node("Gemm", ["pooled", "dense_w"], ["lvm_g"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("beat", TensorProto.FLOAT, ["batch", 12, 400])],
        [helper.make_tensor_value_info("lvm_g", TensorProto.FLOAT, ["batch", 1])],
        [conv_weight, dense_weight],
    )
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    cost = model_cost.model_cost(path)
    # Conv: 16 channels x 100 steps, each a 12 x 5 dot product; Gemm: 16 x 1.
    assert cost["macs_per_beat"] == 16 * 100 * 12 * 5 + 16
    assert cost["flops_per_beat"] == 2 * cost["macs_per_beat"]
    assert cost["parameters"] == 16 * 12 * 5 + 16
    assert (cost["counted_nodes"], cost["other_nodes"]) == (2, 1)


def _load_compare_outputs():
    spec = importlib.util.spec_from_file_location("compare_outputs", DEPLOY / "aarch64" / "compare_outputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_outputs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_compare_outputs_tolerates_float_noise_but_not_a_different_verdict():
    compare = _load_compare_outputs()
    tolerances = compare.Tolerances()
    x86 = {"lvm_g": 151.234, "lvh": False, "flags": ["imputed_qrs"], "source": "/a", "n_beats": 11}
    same = {"lvm_g": 151.236, "lvh": False, "flags": ["imputed_qrs"], "source": "/b", "n_beats": 11}
    problems, worst = compare.json_differences(x86, same, tolerances, "analyze_litert_int8:")
    assert problems == [] and worst == pytest.approx(0.002)
    drifted = dict(same, lvm_g=152.0, lvh=True)
    problems, _ = compare.json_differences(x86, drifted, tolerances, "analyze_litert_int8:")
    assert any("/lvm_g" in p for p in problems) and any("/lvh" in p for p in problems)
    problems, _ = compare.json_differences(x86, dict(same, n_beats=10), tolerances, "analyze_litert_int8:")
    assert problems  # an integer count is compared too


def test_compare_outputs_tolerance_depends_on_precision_and_on_what_the_number_is():
    compare = _load_compare_outputs()
    tolerances = compare.Tolerances()
    x86 = {"lvm_g": 90.0, "per_beat_lvm_g": [89.36], "parameters": {"qrs_ms": 94.0}}
    # INT8 kernels round differently on x86 and ARM: a beat may move by an output step, the estimate by less.
    int8_drift = {"lvm_g": 90.3, "per_beat_lvm_g": [90.87], "parameters": {"qrs_ms": 94.0}}
    assert compare.json_differences(x86, int8_drift, tolerances, "analyze_litert_int8:")[0] == []
    # The same drift from an fp32 model is a real difference.
    problems, _ = compare.json_differences(x86, int8_drift, tolerances, "analyze_litert_fp32:")
    assert any("/lvm_g" in p for p in problems) and any("per_beat_lvm_g[0]" in p for p in problems)
    # Numbers that are not LV mass keep the tight tolerance whatever the precision.
    moved_qrs = dict(x86, parameters={"qrs_ms": 94.12})
    assert compare.json_differences(x86, moved_qrs, tolerances, "analyze_litert_int8:")[0]
    assert compare.tolerance_for("model_outputs:/combined_int8.onnx/outputs/x[0]", tolerances) == tolerances.beat_atol
    assert compare.tolerance_for("model_outputs:/combined_fp32.tflite/outputs/x[0]", tolerances) == tolerances.fp32_atol


def test_compare_outputs_fails_when_a_step_fails_only_on_the_device(tmp_path):
    compare = _load_compare_outputs()
    for side, status in (("x86", "ok"), ("aarch64", "failed")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "steps.tsv").write_text(f"info\t{status}\t1\tinfo.json\n")
        (tmp_path / side / "info.json").write_text("{}")
    result = compare.compare(tmp_path / "x86", tmp_path / "aarch64")
    assert not result["ok"]
    assert "status differs" in result["steps"][0]["problems"][0]


def test_compare_outputs_ignores_install_locations_and_wall_clock_but_not_estimates():
    compare = _load_compare_outputs()
    x86 = {"reason": "/tmp/elvmass-emu-ab12/ttyECG0 (attempt 1)", "first_estimate_s": 1.0, "recorded_utc": "17:14",
           "message": "bundle /root/x86-venv/lib/python3.11/site-packages/edge_runtime/assets/model", "lvm_g": 218.1}
    device = {"reason": "/tmp/elvmass-emu-cd34/ttyECG0 (attempt 1)", "first_estimate_s": 10.8, "recorded_utc": "17:16",
              "message": "bundle /opt/elvmass-device/venv/lib/python3.11/site-packages/edge_runtime/assets/model",
              "lvm_g": 218.1}
    assert compare.json_differences(x86, device, compare.Tolerances(), "run_loop:")[0] == []
    problems, _ = compare.json_differences(x86, dict(device, lvm_g=219.0), compare.Tolerances(), "run_loop:")
    assert [p for p in problems if "lvm_g" in p]


def _write_steps(root, rows):
    for side in ("x86", "aarch64"):
        (root / side).mkdir(exist_ok=True)
        (root / side / "steps.tsv").write_text("".join(f"{step}\t{status}\t0\t{detail}\n" for step, status, detail in rows))
        (root / side / "info.json").write_text('{"leads": 12}')


def test_compare_outputs_fails_when_a_model_step_is_skipped(tmp_path):
    # A smoke test that skips the model on both sides compares nothing about it: that must be a failure.
    compare = _load_compare_outputs()
    no_bundle = "no bundled demo model (edge_runtime/assets/model) in this build yet"
    _write_steps(tmp_path, [("info", "ok", "info.json"), ("model_outputs", "skipped", no_bundle),
                            ("analyze_onnxruntime_int8", "skipped", no_bundle)])
    result = compare.compare(tmp_path / "x86", tmp_path / "aarch64")
    assert not result["ok"]
    problems = {row["step"]: row["problems"] for row in result["steps"]}
    assert problems["info"] == []
    assert "did not run" in problems["model_outputs"][0] and problems["analyze_onnxruntime_int8"]
    # Only a step named deliberately may be skipped; the others still fail.
    partly = compare.compare(tmp_path / "x86", tmp_path / "aarch64", allow_skip=frozenset({"model_outputs"}))
    assert not partly["ok"]
    allowed = compare.compare(tmp_path / "x86", tmp_path / "aarch64",
                              allow_skip=frozenset({"model_outputs", "analyze_onnxruntime_int8"}))
    assert allowed["ok"]
    # The command line says so with exit status 1.
    assert compare.main([str(tmp_path / "x86"), str(tmp_path / "aarch64")]) == 1
    assert compare.main([str(tmp_path / "x86"), str(tmp_path / "aarch64"), "--allow-skip", "model_outputs",
                         "--allow-skip", "analyze_onnxruntime_int8"]) == 0


def test_compare_outputs_passes_when_every_step_ran(tmp_path):
    compare = _load_compare_outputs()
    _write_steps(tmp_path, [("info", "ok", "info.json")])
    assert compare.compare(tmp_path / "x86", tmp_path / "aarch64")["ok"]


def test_read_floor_probe_floors_unpack_the_same_millivolts_as_the_decoder():
    # The probe's lower bounds are only bounds of the decoder's work if they do that work: the same samples,
    # in the same rows, at the same scale, from reads of the bench's real-time size.
    spec = importlib.util.spec_from_file_location("read_floor_probe", DEPLOY / "read_floor_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    from evaluation.commands.bench import _encoded_stream
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.events import Samples
    from firmware_bridge.transport import steady_read_bytes

    wire, n_samples = _encoded_stream(4.0)
    read_bytes = steady_read_bytes(len(wire) / 4.0)
    chunks = [wire[offset:offset + read_bytes] for offset in range(0, len(wire), read_bytes)]
    decoder = StreamDecoder(coalesce=True)
    shipped = np.concatenate([event.signals_mv for chunk in chunks for event in decoder.feed(chunk)
                              if isinstance(event, Samples)], axis=1)
    assert shipped.shape == (8, n_samples)
    scale, order = probe.stream_scale_and_order(wire)
    checked = np.concatenate(probe.checked_decode(chunks, 5, scale, order), axis=1)
    np.testing.assert_array_equal(checked, shipped)
    reads, frame_size, per_frame = probe.floor_reads(wire, read_bytes)
    assert (frame_size, per_frame, len(reads[0])) == (152, 5, 5 * 152)  # ~760 B a read: 5 whole frames
    floor = np.concatenate(probe.floor_decode(reads, frame_size, per_frame, scale, order), axis=1)
    np.testing.assert_array_equal(floor, shipped[:, :floor.shape[1]])
    assert floor.shape[1] >= n_samples - 2 * read_bytes // frame_size * per_frame  # all but a last partial read
