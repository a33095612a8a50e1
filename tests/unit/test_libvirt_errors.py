"""kvmnet.virt._libvirt.translated: libvirt's errors become kvmnet's, naming what was being done."""

from __future__ import annotations

import libvirt
import pytest

import kvmnet
from kvmnet.virt._libvirt import translated


def test_a_libvirt_error_becomes_a_libvirt_error_of_kvmnets_naming_the_job() -> None:
    with kvmnet.connect("test:///default") as host, pytest.raises(kvmnet.LibvirtError) as caught:
        host.connection.define_domain("<domain><name>x</name></domain>")
    assert str(caught.value).startswith("libvirt on test:///default refused the domain")
    assert "missing domain type" in str(caught.value)
    assert isinstance(caught.value.__cause__, libvirt.libvirtError)
    assert caught.value.code == caught.value.__cause__.get_error_code()


def test_a_closed_connection_says_so() -> None:
    raw = libvirt.open("test:///default")
    raw.close()
    closed = pytest.raises(kvmnet.LibvirtError, match="the connection is closed")
    with closed, translated("listing"):
        raw.listAllDomains(0)


def test_other_exceptions_and_success_pass_through() -> None:
    with translated("nothing"):
        value = 1
    assert value == 1
    with pytest.raises(KeyError), translated("a lookup"):
        raise KeyError("x")
