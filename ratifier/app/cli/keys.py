"""``ratifier keys new NAME | public FILE``: Ed25519 keys for signed verdicts and decisions."""

from __future__ import annotations

from pathlib import Path

import click

from ratifier.app.cli.options import CONTEXT_SETTINGS, examples


@click.group(context_settings=CONTEXT_SETTINGS)
def keys() -> None:
    """Signing keys for validators and the tally (docs/signing.md)."""


@keys.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples(
        "ratifier keys new sim-a --dir /etc/ratifier/keys   # writes sim-a.key, mode 0600",
        "RATIFIER_SIGNING_KEY=keys/sim-a.key ratifier validator run my_judge:judge --id sim-a",
        "ratifier keys new tally                            # the tally's key for its decisions",
    ),
)
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="folder to write NAME.key into (created, mode 0700, if missing)",
)
def new(name: str, folder: Path) -> int:
    """Write a new private key to NAME.key (readable by you only) and print its public key.

    An existing file is never overwritten. List the public key in the policy under the
    validator (or give it to clients as RATIFIER_TALLY_PUBLIC_KEY for the tally's key).
    """
    from ratifier.core.signing import Signer, encode_public_key
    from ratifier.io.keys import write_private_key

    # A new folder is the owner's alone, like ~/.ssh; an existing one is left as it is.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    signer = Signer(write_private_key(path))
    _show(path, encode_public_key(signer.public_key), signer.key_id)
    return 0


@keys.command(
    context_settings=CONTEXT_SETTINGS,
    epilog=examples("ratifier keys public sim-a.key"),
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def public(file: Path) -> int:
    """Print the public key of the private key in FILE."""
    from ratifier.core.signing import encode_public_key
    from ratifier.io.keys import load_signer

    signer = load_signer(file)
    _show(file, encode_public_key(signer.public_key), signer.key_id)
    return 0


def _show(path: Path, public_key: str, key_id: str) -> None:
    click.echo(f"private key: {path}")
    click.echo(f"public key:  {public_key}")
    click.echo(f"key id:      {key_id}")
    click.echo("policy entry (under the validator's [[validators]] table):")
    click.echo("  [[validators.keys]]")
    click.echo(f'  public_key = "{public_key}"')


commands = (keys,)
