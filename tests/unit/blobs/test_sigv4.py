"""Signature Version 4 against the worked examples of Amazon's S3 documentation
("Signature Calculations for the Authorization Header" and "Authenticating Requests:
Using Query Parameters"): bucket examplebucket, the documentation's example keys."""

from __future__ import annotations

from datetime import UTC, datetime

from socius.blobs.sigv4 import Credentials, authorization_headers, presigned_query

CREDS = Credentials(
    access_key="AKIAIOSFODNN7EXAMPLE",
    secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    region="us-east-1",
)
WHEN = datetime(2013, 5, 24, tzinfo=UTC)
HOST = "examplebucket.s3.amazonaws.com"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_get_object_with_a_range_is_signed_as_documented() -> None:
    headers = authorization_headers(
        CREDS, WHEN, "GET", HOST, "/test.txt", payload_hash=EMPTY, extra={"range": "bytes=0-9"}
    )
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_a_presigned_get_is_signed_as_documented() -> None:
    query = presigned_query(CREDS, WHEN, "GET", HOST, "/test.txt", expires_seconds=86400)
    assert query.endswith(
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    assert (
        "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" in query
    )
