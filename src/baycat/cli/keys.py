"""`baycat key list|add|remove`: the passwords and key files that open an encrypted
backup. Each changes only the backup's keys object; no data is re-encrypted."""

import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer

from baycat import api
from baycat.cli.options import (
    DEFAULT_TIMEOUT,
    EndpointUrl,
    KeyFile,
    PasswordFile,
    Profile,
    Region,
    Retries,
    Timeout,
    encryption_options,
    prompt_new_password,
    read_secret,
    s3_options,
)
from baycat.cli.output import print_json
from baycat.cli.run import fatal_errors, run_engine, start_logging
from baycat.errors import UsageError
from baycat.private import open_private
from baycat.store.encryption import Encryption, Secret
from baycat.store.s3_options import S3Options

Backup = Annotated[str, typer.Argument(
    metavar="BACKUP", help="An encrypted backup: s3://bucket/prefix/, a directory or "
    "file:// URL.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object: the key slots.")]


def _on_fatal(as_json: bool) -> Any:
    if not as_json:
        return None
    return lambda exc: print_json({"exit_code": int(exc.exit_code),
                                   "fatal_error": str(exc)})


def _opened(password_file: Path | None, key_file: Path | None, endpoint_url: str | None,
            region: str | None, profile: str | None, retries: int, timeout: float
            ) -> tuple[Encryption, S3Options]:
    encryption = encryption_options(password_file, key_file)
    if encryption is None:
        raise UsageError("give the backup's password or key (--password-file, --key-file, "
                         "BAYCAT_PASSWORD_FILE or BAYCAT_PASSWORD_COMMAND)")
    return encryption, s3_options(endpoint_url, region, profile, 4, retries=retries,
                                  timeout=timeout)


def _print(slots: list[dict[str, str]], as_json: bool, done: str = "") -> None:
    if as_json:
        print_json({"exit_code": 0, "slots": slots})
        return
    if done:
        typer.echo(done)
    for slot in slots:
        mark = "  (the one given)" if slot.get("current") else ""
        typer.echo(f"{slot['id']}  {slot['kind']:<8} {slot['created']}{mark}")


def key_list(
    backup: Backup,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_json: AsJson = False,
) -> None:
    """List the key slots of an encrypted backup (id, password or key file, created).
    Needs one of them to open it.

    \b
    Example:
      baycat key list --password-file ~/.pw s3://backups/host1/data/
    """
    on_fatal = _on_fatal(as_json)
    with fatal_errors(on_fatal):
        start_logging(False)
        encryption, s3 = _opened(password_file, key_file, endpoint_url, region, profile,
                                 retries, timeout)
    _print(run_engine(api.key_list(backup, encryption, s3=s3), on_fatal=on_fatal), as_json)


def _new_key_file(path: Path) -> Secret:
    """The key file at `path`; made (32 random bytes, 0600) when it does not exist."""
    if path.exists():
        from baycat.store.keyring import MIN_KEY_FILE_BYTES  # cryptography: only when used

        secret = read_secret(path, "keyfile", "--new-key-file")
        if len(secret.value) < MIN_KEY_FILE_BYTES:  # bad input, not a wrong key: exit 2
            raise UsageError(f"--new-key-file {path}: a key file must hold at least "
                             f"{MIN_KEY_FILE_BYTES} random bytes")
        return secret
    data = secrets.token_bytes(32)
    try:
        fd = open_private(path, os.O_WRONLY | os.O_EXCL)
    except OSError as exc:
        raise UsageError(f"--new-key-file {path}: {exc.strerror}") from None
    with open(fd, "wb") as f:
        f.write(data)
    return Secret("keyfile", data)


def key_add(
    backup: Backup,
    new_password_file: Annotated[Path | None, typer.Option(
        "--new-password-file", metavar="FILE", dir_okay=False,
        help="The new password, from FILE's first line (default: typed twice).")] = None,
    new_key_file: Annotated[Path | None, typer.Option(
        "--new-key-file", metavar="FILE", dir_okay=False,
        help="Add a key file instead; FILE is made (32 random bytes, mode 0600) when it "
        "does not exist.")] = None,
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_json: AsJson = False,
) -> None:
    """Add a password or key file that opens the backup (one more key slot). The data
    is not re-encrypted.

    \b
    Examples:
      baycat key add --password-file ~/.pw --new-password-file ~/.pw2 s3://b/data/
      baycat key add --password-file ~/.pw --new-key-file ~/backup.key s3://b/data/
    """
    on_fatal = _on_fatal(as_json)
    with fatal_errors(on_fatal):
        start_logging(False)
        if new_password_file is not None and new_key_file is not None:
            raise UsageError("give --new-password-file or --new-key-file, not both")
        encryption, s3 = _opened(password_file, key_file, endpoint_url, region, profile,
                                 retries, timeout)
        new: Secret | None
        if new_key_file is not None:
            new = _new_key_file(new_key_file)
        elif new_password_file is not None:
            new = read_secret(new_password_file, "password", "--new-password-file")
        else:
            new = prompt_new_password()
        if new is None:
            raise UsageError("give --new-password-file or --new-key-file (no terminal "
                             "to type a new password on)")
    slots = run_engine(api.key_add(backup, encryption, new, s3=s3), on_fatal=on_fatal)
    _print(slots, as_json, f"added a {new.kind} slot")


def key_remove(
    backup: Backup,
    slot: Annotated[str, typer.Argument(metavar="SLOT", help="The slot's id (`key list`).")],
    password_file: PasswordFile = None,
    key_file: KeyFile = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    retries: Retries = 5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    as_json: AsJson = False,
) -> None:
    """Remove a key slot (never the last). Its password or key file no longer opens the
    backup — unless someone kept a copy of the old keys object (docs/encryption.md). On a
    versioned bucket the old keys object stays as a noncurrent version: run
    `baycat prune --grace 0s` afterwards to delete it.

    \b
    Example:
      baycat key remove --password-file ~/.pw s3://backups/host1/data/ 3f9c01aa
    """
    on_fatal = _on_fatal(as_json)
    with fatal_errors(on_fatal):
        start_logging(False)
        encryption, s3 = _opened(password_file, key_file, endpoint_url, region, profile,
                                 retries, timeout)
    slots = run_engine(api.key_remove(backup, encryption, slot, s3=s3), on_fatal=on_fatal)
    _print(slots, as_json, f"removed slot {slot}")
