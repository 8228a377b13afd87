"""DICOM nodes (issue 17): the PACSes and modalities the platform receives from and retrieves from, and the
listener's allow-list (`DicomNode.may_send`). Writes are admins' (the admin site, `manage.py dicom_node`)."""

from __future__ import annotations

import socket

from django.core.exceptions import ValidationError
from django.db import transaction

from imaging.models import DicomNode

AE_TITLE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-.")


def clean_ae_title(value: str, field: str = "ae_title") -> str:
    """An AE title as DICOM allows it (1–16 characters, no backslash or control character), stripped."""
    title = str(value or "").strip()
    if not 1 <= len(title) <= 16 or not set(title) <= AE_TITLE_CHARS:
        raise ValidationError({field: f"{value!r} is not an AE title (1-16 letters, digits, space, _ - .)"})
    return title


@transaction.atomic
def dicom_node_add(*, name: str, ae_title: str, host: str, port: int, may_send: bool = True,
                   any_address: bool = False, dicomweb_url: str = "", source_name: str = "") -> DicomNode:
    """Add a node (or replace the one of that name); validated as the admin validates it."""
    node = DicomNode.objects.filter(name=name).first() or DicomNode(name=name)
    node.ae_title, node.host, node.port = clean_ae_title(ae_title), str(host).strip(), port
    node.may_send, node.any_address = may_send, any_address
    node.dicomweb_url, node.source_name = dicomweb_url, source_name.strip()
    if not 1 <= int(port) <= 65535:
        raise ValidationError({"port": f"{port} is not a TCP port (1-65535)"})
    node.full_clean()
    node.save()
    return node


def dicom_node_remove(*, name: str) -> bool:
    return DicomNode.objects.filter(name=name).delete()[0] > 0


def senders_allowed_from(address: str | None) -> list[DicomNode]:
    """The nodes whose C-STOREs the listener accepts from ``address``: on the allow-list, and either allowed from
    any address or with a host that resolves to it."""
    return [node for node in DicomNode.objects.filter(may_send=True)
            if node.any_address or (address is not None and address in _addresses(node.host))]


def sender(ae_title: str, address: str | None) -> DicomNode | None:
    """The allowed node calling itself ``ae_title`` from ``address``, if any."""
    return next((n for n in senders_allowed_from(address) if n.ae_title == ae_title.strip()), None)


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:   # a host that does not resolve allows no address
        return set()
