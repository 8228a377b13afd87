"""A real PACS for the tests: Debian's Orthanc (with its DICOMweb plugin) started on spare loopback ports with a
configuration in a temp folder; the system service, if any, is never touched. Skipped with a message where
Orthanc is not installed (`scripts/install_orthanc.sh`, run by `.ci/run`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "TESTPACS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_orthanc(dicomweb: bool = False) -> None:
    if not Path(ORTHANC).exists():
        pytest.skip("Orthanc is not installed (scripts/install_orthanc.sh, Debian's orthanc): PACS tests skipped")
    if dicomweb and not DICOMWEB_PLUGIN.exists():
        pytest.skip("Orthanc's DICOMweb plugin is not installed (Debian's orthanc-dicomweb): DICOMweb tests skipped")


@dataclass
class Orthanc:
    """One running Orthanc: its REST base URL, DICOM port and AE title, the modalities it knows."""

    folder: Path
    modalities: dict = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    ae_title: str = AE_TITLE
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self) -> Orthanc:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "test-pacs", "StorageDirectory": str(self.folder / "db"), "IndexDirectory": str(self.folder / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpServerEnabled": True,
            "DicomServerEnabled": True, "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True, "DicomModalities": self.modalities, "DicomAssociationCloseDelay": 0,
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "StableAge": 1, "LimitFindResults": 0, "LimitFindInstances": 0,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        self.log = self.folder / "orthanc.log"
        self.proc = subprocess.Popen([ORTHANC, str(path)], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc stopped at start: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/system", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"Orthanc did not answer within 60 s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def upload(self, paths) -> list[str]:
        """Store DICOM files in Orthanc through its REST API; returns their Orthanc instance ids."""
        ids = []
        for path in paths:
            response = requests.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=30)
            response.raise_for_status()
            ids.append(response.json()["ID"])
        return ids

    def add_modality(self, name: str, ae_title: str, port: int, host: str = "127.0.0.1") -> None:
        requests.put(f"{self.url}/modalities/{name}", json={"AET": ae_title, "Host": host, "Port": port},
                     timeout=10).raise_for_status()

    def push(self, modality: str, resources: list[str], *, permissive: bool = False, timeout: int = 120) -> dict:
        """Orthanc sends these resources (instances, series, studies or patients) to a modality over C-STORE;
        ``permissive``: an instance the receiver refuses does not stop the others."""
        response = requests.post(f"{self.url}/modalities/{modality}/store",
                                 json={"Resources": resources, "Synchronous": True, "Permissive": permissive},
                                 timeout=timeout)
        return {"status": response.status_code, "body": response.text}

    def studies(self) -> list[str]:
        return requests.get(f"{self.url}/studies", timeout=10).json()
