"""Keyed, deterministic replacement of DICOM UIDs and keyed hashes of source patient keys.

Why keyed and deterministic: the same source UID must become the same new UID in every file, in
every worker process and on every re-import, so that a series stays one series and references
between instances (ReferencedSOPInstanceUID, FrameOfReferenceUID, ...) stay valid, without a shared
look-up table that would itself link old and new UIDs. Why keyed: an unkeyed hash of a UID could be
recomputed by anyone holding the source UID. The key is a site secret given by the caller (a
setting), never stored with the data.

New UIDs are ``2.25.<decimal of a 128-bit UUID>`` (PS3.5 B.2): the 128 bits are the first half of
HMAC-SHA256(secret, old UID) with the RFC 9562 version-8 ("custom") and variant bits set, so at most
44 characters long and free of any organisation root that could hint at the source.
"""

import hashlib
import hmac

from pydicom.uid import UID

MIN_SECRET_BYTES = 16
_UID_DOMAIN = b"sarcoma-deid/uid\x00"
_PATIENT_DOMAIN = b"sarcoma-deid/patient-key\x00"


def _secret_bytes(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"de-identification secret too short: need at least {MIN_SECRET_BYTES} bytes")
    return key


def normalise_uid(uid: str) -> str:
    """Strip the padding (NUL, space) a UID may carry, so '1.2.3\\0' and '1.2.3' map alike."""
    return str(uid).strip().strip("\x00").strip()


def is_registered_uid(uid: str) -> bool:
    """True for UIDs registered in the DICOM standard (SOP classes, transfer syntaxes, coding schemes,
    well-known frames of reference ...): public constants that identify nobody and must not change."""
    return UID(normalise_uid(uid)).type != ""


def keyed_uid(secret: bytes | str, uid: str) -> str:
    """The replacement for ``uid`` under ``secret``: a 2.25 UID (PS3.5 B.2), same input -> same output."""
    digest = hmac.new(_secret_bytes(secret), _UID_DOMAIN + normalise_uid(uid).encode("ascii", "replace"),
                      hashlib.sha256).digest()
    uuid_bytes = bytearray(digest[:16])
    uuid_bytes[6] = (uuid_bytes[6] & 0x0F) | 0x80  # version 8: custom, RFC 9562
    uuid_bytes[8] = (uuid_bytes[8] & 0x3F) | 0x80  # RFC 4122/9562 variant
    return f"2.25.{int.from_bytes(uuid_bytes, 'big')}"


class UidMap:
    """Maps source UIDs to keyed replacements; registered DICOM UIDs are returned unchanged.

    Holds an in-process cache only (old -> new is never persisted: it would be a re-identification
    key). Two maps built with the same secret agree everywhere, which is what makes the mapping
    consistent across files, workers and re-imports.
    """

    def __init__(self, secret: bytes | str):
        self._secret = _secret_bytes(secret)
        self._cache: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        old = normalise_uid(uid)
        if not old:
            return old
        new = self._cache.get(old)
        if new is None:
            new = old if is_registered_uid(old) else keyed_uid(self._secret, old)
            self._cache[old] = new
        return new

    def __repr__(self) -> str:  # never show the secret
        return f"<UidMap with {len(self._cache)} cached UIDs>"


def patient_key_hash(secret: bytes | str, source_patient_id: str) -> str:
    """HMAC-SHA256 (hex, 64 characters) of a source patient key under the site secret.

    Stored on the case instead of the key: a re-import of the same patient finds its case again,
    but the stored value does not reveal the key to anyone without the secret. Surrounding
    whitespace is ignored (DICOM pads values); case is significant.
    """
    key = str(source_patient_id).strip().strip("\x00").strip()
    if not key:
        raise ValueError("source patient key is empty")
    return hmac.new(_secret_bytes(secret), _PATIENT_DOMAIN + key.encode("utf-8"), hashlib.sha256).hexdigest()


_ISSUER_DOMAIN = b"sarcoma-deid/issuer\x00"
_IDENTITY_DOMAIN = b"sarcoma-deid/patient-identity\x00"
_FACT_DOMAIN = b"sarcoma-deid/fact\x00"
_PERSON_DOMAIN = b"sarcoma-deid/person\x00"


def normalise_issuer(issuer: str) -> str:
    """An issuer of patient IDs as compared: padding and runs of spaces collapsed, upper case
    ("Hospital  A " and "HOSPITAL A" are one issuer)."""
    return " ".join(str(issuer or "").replace("\x00", " ").split()).upper()


def issuer_hash(secret: bytes | str, issuer: str) -> str:
    """HMAC-SHA256 (hex) of an issuer of patient IDs (Issuer of Patient ID, a manifest's institution or the
    source a coordinator names); "" when there is none. Stored on cases instead of the issuer's name."""
    name = normalise_issuer(issuer)
    if not name:
        return ""
    return hmac.new(_secret_bytes(secret), _ISSUER_DOMAIN + name.encode("utf-8"), hashlib.sha256).hexdigest()


def patient_identity_hash(secret: bytes | str, key_hash: str, issuer_key: str) -> str:
    """The identity of a patient, (issuer, patient key), as one keyed hash.

    ``key_hash`` is ``patient_key_hash`` of the source patient key and ``issuer_key`` the ``issuer_hash`` of its
    issuer. Without an issuer the identity is ``key_hash`` itself: cases imported before issuers were recorded
    keep being found by the hash they were stored under."""
    if not issuer_key:
        return key_hash
    message = _IDENTITY_DOMAIN + issuer_key.encode("ascii") + b"\x00" + key_hash.encode("ascii")
    return hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def fact_hash(secret: bytes | str, kind: str, value: str) -> str:
    """A keyed hash (hex) of one demographic fact (kind "sex" or "birth_date"), "" when the value is empty:
    lets an import tell two patients apart without storing the fact itself."""
    text = str(value or "").replace("\x00", " ").strip().upper()
    if not text:
        return ""
    message = _FACT_DOMAIN + kind.encode("ascii") + b"\x00" + text.encode("utf-8")
    return hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def _normalise_name(name: str) -> str:
    """A DICOM person name compared loosely: the components of family^given^middle^prefix^suffix (and any
    spaces) as upper-case words, so "Doe^Jane" = "DOE^JANE^^^" = "DOE JANE"."""
    return " ".join(str(name or "").replace("\x00", " ").replace("^", " ").replace("=", " ").split()).upper()


def person_hash(secret: bytes | str, name: str, birth_date: str, sex: str) -> str:
    """A keyed hash (hex) of name + birth date + sex (issue 14, item 9): two cases that share it under different
    patient IDs may be one person (a patient registered twice, or at two sites). "" unless the name and the birth
    date are both given: a hash of a sex alone would flag half the cohort. The values are never stored."""
    person, birth = _normalise_name(name), str(birth_date or "").strip()
    if not person or not birth:
        return ""
    message = (_PERSON_DOMAIN + person.encode("utf-8") + b"\x00" + birth.encode("utf-8") + b"\x00"
               + str(sex or "").strip().upper().encode("utf-8"))
    return hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()
