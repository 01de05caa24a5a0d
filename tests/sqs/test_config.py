"""The sqs:// URL."""

from __future__ import annotations

import pytest

from agentstream.failures import ConfigurationError
from agentstream.transports.sqs_config import parse_sqs_url


def test_a_url_with_a_host_points_at_that_endpoint_over_http_with_its_credentials():
    s = parse_sqs_url(
        "sqs://key:s%2Fecret@127.0.0.1:4566?region=eu-west-1&visibility_timeout=45"
        "&heartbeat=5&wait_time=2&prefetch=50&create_queues=true"
    )
    assert s.endpoint_url == "http://127.0.0.1:4566"
    assert (s.access_key_id, s.secret_access_key) == ("key", "s/ecret")
    assert s.region == "eu-west-1"
    assert (s.visibility_timeout_s, s.heartbeat_s, s.wait_time_s, s.prefetch) == (45, 5.0, 2, 50)
    assert s.create_queues is True


def test_a_url_without_a_host_uses_aws_with_the_default_credential_chain(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    s = parse_sqs_url("sqs://")
    assert s.endpoint_url is None and s.access_key_id is None
    assert s.region == "ap-south-1"
    assert s.visibility_timeout_s is None  # the queue's own
    assert s.heartbeat_for(30) == 10


def test_tls_makes_the_endpoint_https():
    assert parse_sqs_url("sqs://vpce.example:443?tls=true").endpoint_url == (
        "https://vpce.example:443"
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqs://h:1?bogus=1",
        "sqs://h:1?wait_time=21",
        "sqs://h:1?visibility_timeout=0",
        "sqs://h:1?visibility_timeout=10&heartbeat=10",
        "sqs://h:1?prefetch=zero",
        "sqs://h:1?create_queues=maybe",
        "sqs://onlykey@h:1",
    ],
)
def test_invalid_settings_are_configuration_errors(url):
    with pytest.raises(ConfigurationError):
        parse_sqs_url(url)
