"""The documentation site: built in strict mode, needing no network, checked in a real browser.

The build (``mkdocs build --strict``) fails on a broken link, a missing
reference or a docstring griffe cannot read. The built pages are then opened
from the folder (file://, as a reader with no network would) in headless
Chromium, which `.ci/run` installs: a checker page loads each one in a frame
and reports every image that did not load and every link, anchor included,
that leads nowhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_MISSING = (
    "Chromium is not installed, and the documentation site's browser test needs it "
    "(the README's set-up): install it with your package manager (Debian/Ubuntu: "
    "sudo apt-get install chromium; Fedora: sudo dnf install chromium; macOS: brew install "
    "--cask chromium), or run .ci/run, which installs it"
)

# Loads the page named after '#' in a frame, then reports as JSON in #out:
# images that did not load, links (local ones) whose file or anchor is missing.
_CHECKER = """<!doctype html><html><head><meta charset="utf-8"><title>check</title></head>
<body><pre id="out">pending</pre><script>
const page = decodeURIComponent(location.hash.slice(1));
const frame = document.createElement("iframe");
frame.style.width = "1200px"; frame.style.height = "900px";
frame.src = page;
frame.onload = () => setTimeout(check, 300);
document.body.appendChild(frame);
function fetchText(url) {
  return new Promise(resolve => {
    const xhr = new XMLHttpRequest();
    xhr.onload = () => resolve(xhr.status === 0 || xhr.status === 200 ? xhr.responseText : null);
    xhr.onerror = () => resolve(null);
    try { xhr.open("GET", url); xhr.send(); } catch (e) { resolve(null); }
  });
}
async function check() {
  const doc = frame.contentDocument;
  const result = {title: doc.title, images: [], broken_images: [], links: 0,
                  broken_links: [], ids: [...doc.querySelectorAll("[id]")].map(e => e.id)};
  for (const img of doc.images) {
    result.images.push({src: img.getAttribute("src"), width: img.naturalWidth});
    if (!(img.complete && img.naturalWidth > 0)) result.broken_images.push(img.getAttribute("src"));
  }
  const pages = new Map();
  for (const a of doc.querySelectorAll("a[href]")) {
    const href = a.getAttribute("href");
    if (/^(https?:|mailto:|javascript:)/.test(href)) continue;
    result.links++;
    const url = new URL(href, doc.baseURI);
    const file = url.href.split("#")[0];
    if (!pages.has(file)) pages.set(file, await fetchText(file));
    const text = pages.get(file);
    if (text === null) { result.broken_links.push(href); continue; }
    const anchor = decodeURIComponent(url.hash.slice(1));
    if (anchor) {
      const target = file === doc.URL.split("#")[0]
        ? doc : new DOMParser().parseFromString(text, "text/html");
      if (!target.getElementById(anchor)) result.broken_links.push(href);
    }
  }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(result);
}
</script></body></html>
"""


# Where Chromium or Chrome is when it is not on PATH (macOS apps, Windows; the
# hosted CI runners have Chrome there). TOOLKIT_CHROMIUM names another.
_BROWSER_PATHS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
)


def _chromium() -> str:
    given = os.environ.get("TOOLKIT_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    for path in _BROWSER_PATHS:
        if os.path.exists(path):
            return path
    pytest.fail(CHROMIUM_MISSING, pytrace=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built from docs/ in strict mode into a folder of its own."""
    folder = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    warnings = [line for line in build.stderr.splitlines() if "WARNING" in line]
    assert build.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        warnings or build.stderr.splitlines()[-20:]
    )
    (folder / "_check.html").write_text(_CHECKER, encoding="utf-8")
    return folder


def _open(site: Path, page: str) -> dict[str, object]:
    """What the checker found on page, opened from the folder in headless Chromium."""
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--allow-file-access-from-files",  # the checker reads the site's own files
            "--virtual-time-budget=15000",
            "--dump-dom",
            (site / "_check.html").as_uri() + "#" + page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r"RESULT(\{.*?\})</pre>", result.stdout, re.DOTALL)
    assert found, f"the checker did not report on {page}:\n{result.stdout[-2000:]}"
    report: dict[str, object] = json.loads(found.group(1).replace("&amp;", "&"))
    return report


def test_the_site_fetches_nothing_from_elsewhere(site: Path) -> None:
    # Scripts, styles, fonts, images and frames come from the folder: a reader
    # with no network sees the whole site. (Links to other sites are links.)
    remote = re.compile(
        r"<(?:script|img|iframe|source)[^>]*\ssrc=\"(?:https?:)?//"
        r"|<link[^>]*\shref=\"(?:https?:)?//"
        r"|url\((?:[\"']?)(?:https?:)?//"
        r"|@import\s+(?:url\()?[\"']?(?:https?:)?//"
    )
    offenders = [
        str(path.relative_to(site))
        for path in site.rglob("*")
        if path.suffix in (".html", ".css", ".js")
        and remote.search(path.read_text(errors="replace"))
    ]
    assert offenders == []


@pytest.mark.parametrize("page", ["index.html", "reference/pools.html", "benchmarks.html"])
def test_a_page_in_a_real_browser_has_no_broken_image_or_link(site: Path, page: str) -> None:
    report = _open(site, page)
    assert report["broken_images"] == []
    assert report["broken_links"] == []
    links = report["links"]
    assert isinstance(links, int)
    assert links > 10  # the navigation at least: the page really rendered
    ids = report["ids"]
    assert isinstance(ids, list)
    if page == "reference/pools.html":
        # The API entry of toolkit.Pool, its methods, and what they raise.
        assert {"toolkit.Pool", "toolkit.Pool.map", "toolkit.Pool.apply"} <= set(ids)
    if page == "benchmarks.html":
        images = report["images"]
        assert isinstance(images, list)
        charts = [i for i in images if "charts/" in str(i["src"])]
        assert charts, "the benchmarks page shows no chart"
        assert all(int(i["width"]) > 100 for i in charts)
