"""The command line explains itself: every command and every option has help text."""

from __future__ import annotations

import argparse

from extproc import cli


def test_every_command_and_option_has_help() -> None:
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helped = {c.dest: c.help for c in commands._choices_actions}
    missing = [name for name in commands.choices if not helped.get(name)]
    for name, sub in commands.choices.items():
        missing += [f"{name} {a.option_strings[0] if a.option_strings else a.dest}"
                    for a in sub._actions if not a.help]
    assert missing == []
