"""The console script: help for every command, config errors as one readable line."""

import json

import pytest

from recgen.cli import COMMANDS, build_parser, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", [["data", "prepare"], ["pools", "build"], ["train"], ["evaluate"]])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*command, "--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_train_print_config_resolves_preset_and_overrides(capsys):
    assert main(["train", "--method", "grpo", "--preset", "smoke", "--steps", "9", "--set", "lam=0.5",
                 "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["method"], cfg["preset"], cfg["steps"], cfg["lam"], cfg["model"]) == ("grpo", "smoke", 9, 0.5, "tiny")


def test_config_mistake_is_one_line_error(capsys):
    assert main(["train", "--preset", "smoke", "--set", "group_size=1", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recgen: error: group_size (G) must be >= 2")
    assert main(["train", "--preset", "smoke", "--set", "bogus=1", "--print-config"]) == 2
    assert "bogus" in capsys.readouterr().err
