#!/usr/bin/env bash
# Debian's Orthanc PACS and its DICOMweb plugin, for the PACS tests (tests/imaging/test_imaging_pacs*.py). The tests
# start their own Orthanc on spare loopback ports with a config in a temp folder; the system service is never
# used. A no-op where Orthanc is installed; without apt-get the PACS tests are skipped with a message.
set -euo pipefail
if [ -x /usr/sbin/Orthanc ] && [ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "orthanc not installed and no apt-get: the PACS tests will be skipped" >&2; exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null
