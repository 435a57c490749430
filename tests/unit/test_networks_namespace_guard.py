"""The namespace guard of dockyard/networks/netlink.py: a change is refused unless the socket's
namespace is the one asked for."""

from __future__ import annotations

import pytest

from dockyard.errors import DockyardError
from dockyard.networks.netlink import NamespaceMismatch, check_namespace


def test_same_namespace_passes() -> None:
    check_namespace((4, 4026531840), (4, 4026531840), "creating bridge x")


@pytest.mark.parametrize(("actual", "expected"), [
    ((4, 4026531840), (4, 4026532001)),   # another namespace
    ((5, 4026531840), (4, 4026531840)),   # same inode number on another nsfs device
])
def test_other_namespace_is_refused(actual: tuple[int, int], expected: tuple[int, int]) -> None:
    with pytest.raises(NamespaceMismatch) as caught:
        check_namespace(actual, expected, "creating bridge x")
    assert "refusing creating bridge x" in caught.value.message
    assert isinstance(caught.value, DockyardError) and caught.value.status == 500
