"""`moleblend-train`: `fairseq-train` with this plugin as its --user-dir, whose --help lists
the plugin's flags.

fairseq's own `--help` is answered in its first parsing pass, before the flags of the
chosen task, architecture and criterion are added to the parser, so `fairseq-train --task
moleblend_pretrain --help` shows none of them. This command adds them first, as fairseq's
second pass would, and then prints the help. Everything else is passed to fairseq-train
unchanged:

    moleblend-train --task moleblend_pretrain --arch moleblend_small --criterion moleblend_pretrain --help
    moleblend-train DATA --task moleblend_pretrain --arch moleblend_small --criterion moleblend_pretrain ...
"""
import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
HELP_FLAGS = ("-h", "--help")


def with_user_dir(argv):
    """argv with --user-dir pointing at this package, unless one is given."""
    if any(a == "--user-dir" or a.startswith("--user-dir=") for a in argv):
        return list(argv)
    return ["--user-dir", PLUGIN_DIR] + list(argv)


def full_help(argv) -> str:
    """fairseq-train's help with the flags of the task, architecture, criterion, optimizer
    and scheduler that `argv` names (the plugin's pretraining task, `moleblend_base` and
    the task's criterion where it names none)."""
    from fairseq import options

    rest = [a for a in with_user_dir(argv) if a not in HELP_FLAGS]
    given = {a.split("=")[0] for a in rest}
    task = next((rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--task"), "moleblend_pretrain")
    # Unnamed components default to the plugin's, so that their flags are listed too.
    rest += [] if "--task" in given else ["--task", task]
    rest += [] if {"--arch", "-a"} & given else ["--arch", "moleblend_base"]
    rest += [] if "--criterion" in given else ["--criterion", task]
    parser = options.get_training_parser()
    try:
        # Fills the parser with the chosen components' flags; its final parse may stop on
        # a missing data folder, which a help request need not give.
        options.parse_args_and_arch(parser, rest, parse_known=True)
    except SystemExit:
        pass
    return parser.format_help()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in HELP_FLAGS for a in argv):
        print(full_help(argv))
        return 0
    from fairseq_cli import train

    sys.argv = [sys.argv[0]] + with_user_dir(argv)
    train.cli_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
