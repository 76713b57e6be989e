"""The params loader: every error names the key path, the bad value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lwgan import config
from lwgan.cli import main

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_repo_params_load_and_list_every_key():
    params = config.load(ROOT / "params.yaml")
    assert isinstance(params, config.Params)
    # params.yaml lists every key explicitly (DVC tracks keys of the file, not our defaults).
    in_file = set(config.flatten(yaml.safe_load((ROOT / "params.yaml").read_text())))
    in_schema = {key for key, *_ in config.describe()}
    assert in_file == in_schema


def test_params_are_frozen():
    params = config.from_dict({})
    with pytest.raises(AttributeError):
        params.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("body:\n  modle: x\n", ["body.modle", "unknown key", "model"]),
        ("sedd: 1\n", ["sedd", "unknown key", "seed"]),
        ("seed: -1\n", ["seed", "-1", ">= 0"]),
        ("seed: 1.5\n", ["seed", "1.5", "integer"]),
        ("seed: true\n", ["seed", "True", "integer"]),
        ("body:\n  preview_size: 4096\n", ["body.preview_size", "4096", "<= 2048"]),
        ("body:\n  preview_size: '256'\n", ["body.preview_size", "'256'", "integer"]),
        ("tracking:\n  enabled: 'yes'\n", ["tracking.enabled", "'yes'", "true or false"]),
        ("body: 3\n", ["body", "3", "mapping"]),
        ("- 1\n- 2\n", ["params.yaml", "mapping at the top level"]),
        ("train:\n  image_size: 100\n", ["train.image_size", "100", "multiple of 8"]),
        ("train:\n  image_size: 96\n", ["train.image_size", "96", "divide data.image_size (256)"]),
        ("train:\n  final_lr: 0.01\n", ["train.final_lr", "0.01", "must not exceed"]),
        ("train:\n  betas_g: [0.5, 1.5]\n", ["train.betas_g", "1.5", "< 1.0"]),
    ],
)
def test_errors_name_key_value_and_allowed(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "seed: [1,\n"))


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, "seed: 1\n")
    assert config.load(path, {"body.preview_size": 64}).body.preview_size == 64
    with pytest.raises(config.ConfigError, match="body.preview_size"):
        config.load(path, {"body.preview_size": 1})


def test_ints_widen_to_floats_and_lists_become_tuples():
    assert config._convert(3, float, "x") == 3.0 and isinstance(config._convert(3, float, "x"), float)
    assert config._convert([1, 2], tuple[int, ...], "x") == (1, 2)
    with pytest.raises(config.ConfigError, match=r"x\[1\]"):
        config._convert([1, "a"], tuple[int, ...], "x")
    with pytest.raises(config.ConfigError, match="finite"):
        config._convert(float("nan"), float, "x")


def test_cli_params_check(tmp_path, capsys):
    assert main(["params", "check", str(ROOT / "params.yaml")]) == 0
    bad = write(tmp_path, "body:\n  preview_poses: 0\n")
    assert main(["params", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "body.preview_poses" in err and ">= 1" in err


def test_console_script_exit_code(tmp_path):
    bad = write(tmp_path, "tracking:\n  experimnt: x\n")
    proc = subprocess.run([sys.executable, "-m", "lwgan.cli", "params", "check", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "tracking.experimnt: unknown key" in proc.stderr


def test_params_show_lists_every_key(capsys):
    assert main(["params", "show", str(ROOT / "params.yaml")]) == 0
    out = capsys.readouterr().out
    for key, *_ in config.describe():
        assert key in out


def test_cross_field_rules_name_both_keys(tmp_path):
    message = r"synth.val_subjects: got 3, must be < synth.subjects \(3\)"
    with pytest.raises(config.ConfigError, match=message):
        config.load(write(tmp_path, "synth:\n  subjects: 3\n  val_subjects: 3\n"))
    with pytest.raises(config.ConfigError, match=r"data.root: empty, but data.source is 'iper'"):
        config.load(write(tmp_path, "data:\n  source: iper\n"))
    with pytest.raises(config.ConfigError, match=r"data.source: got 'ipr', allowed: 'synthetic', 'iper'"):
        config.load(write(tmp_path, "data:\n  source: ipr\n"))
