"""What a job's result says, for people: its counts in words, the reasons files were turned away, and links to what
it made. The job page shows this above the raw result, so that "0 imported, 1 rejected" and the reason are read
at a glance instead of hidden in a collapsed JSON dump.

Runners store their result as plain values (``JobContext.set_result``); the jobs app imports no other app, so the
few result keys that name another app's page are listed here by URL name.
"""

from dataclasses import dataclass, field

from django.urls import reverse

# result key -> (URL name of the page of the object whose pk it holds, link text)
RESULT_LINKS = (
    ("import_batch", "imaging_import_detail", "Open the import"),
    ("evaluation", "inference_evaluation", "Open the evaluation"),
)
# (result key, the word after its count, shown when 0), in this order: "0 imported, 1 rejected" (and "2 skipped")
RESULT_COUNTS = (("files_imported", "imported", True), ("files_rejected", "rejected", True),
                 ("files_skipped", "skipped", False))
# result key -> heading of its list of {"file", "reason"} (the importer's rejected and skipped files)
RESULT_REASONS = (("rejected", "Rejected files"), ("skipped", "Skipped files"))
MAX_REASONS = 50  # a long list is on the import's page, whole


@dataclass(frozen=True)
class ReasonList:
    title: str
    items: list[dict]  # {"file": sanitised label, "reason": ...}
    more: int = 0  # how many more than are shown


@dataclass(frozen=True)
class Outcome:
    counts: str = ""  # "0 imported, 1 rejected", or the result's own "summary" line; empty when it has neither
    reasons: list[ReasonList] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (url, text)

    def __bool__(self) -> bool:
        return bool(self.counts or self.reasons or self.links)


def job_outcome(result: dict | None) -> Outcome:
    """The people's view of a job's ``result`` (an empty Outcome when it holds none of the keys above)."""
    result = result or {}
    counts = ", ".join(f"{result[key]:,} {word}" for key, word, when_zero in RESULT_COUNTS
                       if key in result and (result[key] or when_zero)) or str(result.get("summary") or "")
    reasons = [ReasonList(title, list(result[key][:MAX_REASONS]), max(0, len(result[key]) - MAX_REASONS))
               for key, title in RESULT_REASONS if result.get(key)]
    links = [(reverse(name, args=[result[key]]), text) for key, name, text in RESULT_LINKS
             if isinstance(result.get(key), int)]
    links += [(reverse("job_detail", args=[pk]), f"Open import job {pk}") for pk in result.get("imports", [])
              if isinstance(pk, int)]                  # jobs a job started (a PACS retrieval's imports)
    return Outcome(counts=counts, reasons=reasons, links=links)
