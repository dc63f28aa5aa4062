"""No secret in any output, wherever the credentials came from (issue 12, item 6).

Keys from the environment are known to the redactor by value; keys a profile of the AWS
config supplies are resolved by botocore, so the logs must learn them from there, and
every form in which botocore prints a header must be scrubbed by pattern as well."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import run_baycat
from tests.targets import Target

TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEprofileSESSIONtoken0123456789/+="


@pytest.mark.parametrize("fast", ["1", "0"])
def test_a_session_token_from_a_profile_never_reaches_the_log(
        s3: Target, tmp_path: Path, fast: str) -> None:
    key, secret = s3.env["AWS_ACCESS_KEY_ID"], s3.env["AWS_SECRET_ACCESS_KEY"]
    config = tmp_path / "aws-config"
    config.write_text(f"[profile backup]\nregion = us-east-1\naws_access_key_id = {key}\n"
                      f"aws_secret_access_key = {secret}\naws_session_token = {TOKEN}\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(config),
           "AWS_ENDPOINT_URL": s3.env["AWS_ENDPOINT_URL"], "BAYCAT_S3_FAST": fast}
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_bytes(b"content")
    log_file = tmp_path / "debug.log"
    # SeaweedFS refuses a session token it did not issue (InvalidAccessKeyId): the run
    # fails, and its requests and the error are logged at debug. None may carry a secret.
    proc = run_baycat("--log-level", "debug", "--log-file", log_file, "sync", "--json",
                      "--profile", "backup", src, s3.url, env=env, check=None)
    assert proc.returncode in (0, 3), proc.stderr
    log_text = log_file.read_text()
    if fast == "0":  # botocore sent the request, and logged its headers
        assert "X-Amz-Security-Token" in log_text
    for output in (proc.stdout.decode(), proc.stderr.decode(), log_text):
        for value in (TOKEN, secret, key, TOKEN[:24]):
            assert value not in output


@pytest.mark.parametrize(("text", "secret"), [
    # botocore's "Sending http request" line: a dict of bytes values
    ("headers={'X-Amz-Date': b'20261201T171925Z', 'X-Amz-Security-Token': "
     "b'FQoGZXIvYXdzEXAMPLETOKEN', 'Authorization': b'AWS4-HMAC-SHA256 "
     "Credential=keyid123/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, "
     "Signature=abc'}", "FQoGZXIvYXdzEXAMPLETOKEN"),
    ("{'x-amz-security-token': 'FQoGZXIvYXdzEXAMPLETOKEN'}", "FQoGZXIvYXdzEXAMPLETOKEN"),
    # a canonical request, one header a line
    ("host:127.0.0.1\nx-amz-security-token:FQoGZXIvYXdzEXAMPLETOKEN\n",
     "FQoGZXIvYXdzEXAMPLETOKEN"),
    ("X-Amz-Security-Token: FQoGZXIvYXdzEXAMPLETOKEN", "FQoGZXIvYXdzEXAMPLETOKEN"),
    ("'Authorization': b'Bearer opaque-token-value'", "opaque-token-value"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("Credential=keyid123/20261201/us-east-1/s3/aws4_request", "keyid123"),
    ("aws_session_token = FQoGZXIvYXdzEXAMPLETOKEN", "FQoGZXIvYXdzEXAMPLETOKEN"),
    ("aws_access_key_id=keyid123456", "keyid123456"),
    ('{"AccessKeyId": "keyid123456", "SessionToken": "tok-1234567"}', "keyid123456"),
    ("<Error><Code>InvalidAccessKeyId</Code><AWSAccessKeyId>keyid123456</AWSAccessKeyId>"
     "</Error>", "keyid123456"),
    ("<SignatureProvided>0a1b2c3d4e</SignatureProvided>", "0a1b2c3d4e"),
])
def test_every_form_botocore_prints_is_redacted(text: str, secret: str) -> None:
    from baycat.redact import redact

    out = redact(text)
    assert secret not in out, out
    assert "<redacted>" in out


def test_names_of_things_are_not_secrets() -> None:
    from baycat.redact import redact

    for text in ("access denied to s3://b/ (InvalidAccessKeyId); check the credentials",
                 "AuthorizationHeaderMalformed", "no AWS credentials found"):
        assert redact(text) == text


def test_credentials_in_a_url_are_redacted() -> None:
    from baycat.redact import redact

    assert redact("https://user:pw-secret@example.org/b/") == "https://<redacted>@example.org/b/"
    assert redact("s3://bucket/a@b") == "s3://bucket/a@b"
