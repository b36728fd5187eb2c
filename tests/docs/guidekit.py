"""Running the guides' snippets: extract the ```python title="…" test``` blocks, and a scripted browser.

The browser follows redirects and submits the hosted pages' forms (login, consent, logout
confirmation) like a person would. It keeps cookies itself: httpx's cookie jar withholds
``Secure`` cookies from plain-http URLs, while browsers treat 127.0.0.1 as a secure context.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r'^```python title="([^"]+)" test\n(.*?)^```', re.MULTILINE | re.DOTALL)
FORM = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>(.*?)</form>', re.DOTALL | re.IGNORECASE)
INPUT = re.compile(r"<input([^>]*)>", re.IGNORECASE)
ATTR = re.compile(r'(\w+)="([^"]*)"')


def snippets(guide: str) -> list[tuple[str, str]]:
    """(title, code) of every tested block of docs/GUIDE, in order."""
    return [(title, code) for title, code in BLOCK.findall((DOCS / guide).read_text())]


def run_snippets(guide: str, **names: Any) -> dict[str, Any]:
    """Execute the guide's tested blocks in one namespace (like a reader pasting them into one file)."""
    ns: dict[str, Any] = {"__name__": "guide_" + guide.removesuffix(".md").replace("-", "_"), **names}
    blocks = snippets(guide)
    assert blocks, f"docs/{guide} has no tested snippet"
    for title, code in blocks:
        exec(compile(code, f"docs/{guide} [{title}]", "exec"), ns)  # noqa: S102 - our own documentation
    return ns


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Browser:
    def __init__(self, username: str = "", password: str = "", *, consent: str = "allow") -> None:
        self.username, self.password, self.consent = username, password, consent
        self.cookies: dict[str, str] = {}
        self.http = httpx.Client(timeout=10)
        self.visited: list[str] = []

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, url: str, data: dict[str, str] | None = None) -> httpx.Response:
        headers = {"origin": origin(url)} if method == "POST" else {}
        if self.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = self.http.request(method, url, data=data, headers=headers)
        for line in r.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            gone = "max-age=0" in line.lower() or not value
            if gone:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        self.visited.append(f"{method} {url.split('?')[0]} -> {r.status_code}")
        return r

    def _form(self, page: str) -> tuple[str, dict[str, str]] | None:
        m = FORM.search(page)
        if m is None:
            return None
        fields: dict[str, str] = {}
        for raw in INPUT.findall(m.group(2)):
            attrs = dict(ATTR.findall(raw))
            if "name" in attrs:
                fields[attrs["name"]] = unescape(attrs.get("value", ""))
        if "password" in fields:
            fields.update(username=self.username, password=self.password)
        if 'name="decision"' in m.group(2):
            fields["decision"] = self.consent
        return unescape(m.group(1)), fields

    def visit(self, url: str, *, max_steps: int = 20) -> httpx.Response:
        """Follow redirects and submit forms until a page without a form (or a non-2xx/3xx) is reached."""
        method, data = "GET", None
        for _ in range(max_steps):
            r = self._send(method, url, data)
            if r.is_redirect:
                url, method, data = urljoin(url, r.headers["location"]), "GET", None
                continue
            html = r.status_code == 200 and "text/html" in r.headers.get("content-type", "")
            form = self._form(r.text) if html else None
            if form is None:
                return r
            url, method, data = urljoin(url, form[0]), "POST", form[1]
        raise AssertionError(f"too many steps: {self.visited}")
