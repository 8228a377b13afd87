"""`manage.py dicom_node add NAME --ae AE --host HOST --port PORT [...]` / `list` / `remove NAME`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging import nodes
from imaging.models import DicomNode
from jobs import cli


class Command(BaseCommand):
    help = "The DICOM nodes the platform receives from (the listener's allow-list) and retrieves from."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a node, or replace the one of that name")
        add.add_argument("name")
        add.add_argument("--ae", required=True, help="the node's AE title")
        add.add_argument("--host", required=True)
        add.add_argument("--port", type=int, required=True, help="its DICOM port")
        add.add_argument("--no-send", action="store_true", help="not on the allow-list: its C-STOREs are refused")
        add.add_argument("--any-address", action="store_true", help="accept its AE title from any address")
        add.add_argument("--dicomweb", default="", help="its DICOMweb root URL, for DICOMweb pulls")
        add.add_argument("--source-name", default="", help="the site its patient IDs belong to (default: NAME)")
        sub.add_parser("list", help="every node")
        remove = sub.add_parser("remove", help="remove a node")
        remove.add_argument("name")

    def handle(self, *args, **o):
        if o["action"] == "list":
            for node in DicomNode.objects.all():
                self.stdout.write(f"{node.name}\t{node.ae_title}\t{node.host}:{node.port}\t"
                                  f"{'may send' if node.may_send else 'may not send'}"
                                  f"{' from any address' if node.any_address and node.may_send else ''}"
                                  f"{chr(9) + node.dicomweb_url if node.dicomweb_url else ''}")
            return
        if o["action"] == "remove":
            if not nodes.dicom_node_remove(name=o["name"]):
                raise CommandError(f"no DICOM node named {o['name']!r}")
            self.stdout.write(f"removed {o['name']}")
            return
        try:
            node = nodes.dicom_node_add(name=o["name"], ae_title=o["ae"], host=o["host"], port=o["port"],
                                        may_send=not o["no_send"], any_address=o["any_address"],
                                        dicomweb_url=o["dicomweb"], source_name=o["source_name"])
        except ValidationError as exc:
            raise CommandError(cli.validation_message(exc)) from None
        self.stdout.write(f"{node}: {'on the allow-list' if node.may_send else 'not on the allow-list'}")
