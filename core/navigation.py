"""Links on each role's landing page, registered by the apps that own the pages.

An app adds its pages in its AppConfig.ready(): `navigation.register("Coordinator", ...)`. A link whose
URL name does not resolve (an app not installed) is left out rather than breaking the page.
"""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class Link:
    role: str
    title: str
    url_name: str
    description: str
    order: int = 100


_LINKS: list[Link] = []


def register(role: str, title: str, url_name: str, description: str, order: int = 100) -> None:
    link = Link(role, title, url_name, description, order)
    if link not in _LINKS:
        _LINKS.append(link)


def links_for(role: str) -> list[dict]:
    out = []
    for link in sorted((lk for lk in _LINKS if lk.role == role), key=lambda lk: (lk.order, lk.title)):
        try:
            out.append({"title": link.title, "url": reverse(link.url_name), "description": link.description})
        except NoReverseMatch:
            continue
    return out
