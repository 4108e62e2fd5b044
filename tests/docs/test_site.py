"""The documentation site, built as `make docs` builds it, works from its folder with no network.

The site is built strictly (a broken link or a missing page fails) into a scratch folder, then
opened from disk (``file://``) in headless Chromium: the navigation renders, search finds what
users type, and Chromium's network log shows that no page asked for anything on the web.

Needs the docs extra and the iframe-worker shim (`make docs-deps`) and Chromium; without them
the tests skip locally, and under CI (``CI=true``, where `.ci/run` installs all three) they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from tests.browser import CHROMIUM_FLAGS, chromium
from tests.conftest import REPO, cli_env

# Builds the whole site and drives Chromium: minutes, not seconds.
pytestmark = pytest.mark.slow

SHIM = REPO / "docs" / "assets" / "javascripts" / "iframe-worker" / "shim.js"
# What users type in the search box, and the pages (any of them) it must list first.
SEARCHES = {
    "spare": ("concepts/pruning.html",),
    "heartbeat": ("concepts/storage.html", "how-to/preemption.html"),
    "devices": ("how-to/gpus.html",),
    "export pareto": ("how-to/multi-objective.html", "reference/cli.html"),
}


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    if under_ci():
        pytest.fail(f"CI must have {what} (`.ci/run` runs `make docs`, which installs it)")
    pytest.skip(f"{what} is not installed: run `make docs-deps`; CI runs this test")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly from this checkout into a scratch folder."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        missing("the docs extra (mkdocs, mkdocs-material, ...)")
    if not SHIM.exists():
        missing(f"the iframe-worker shim ({SHIM.relative_to(REPO)})")
    folder = tmp_path_factory.mktemp("docs") / "site"
    env = cli_env()
    env.update(NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    return folder


def test_the_pages_load_nothing_from_the_web(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 25
    web_load = re.compile(
        r"<(?:script|img|iframe)[^>]*\ssrc=\"(?:https?:)?//|<link[^>]*\shref=\"(?:https?:)?//"
    )
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not web_load.search(html), f"{page.relative_to(site)} loads from the web"
        assert "fonts.googleapis" not in html and "unpkg.com" not in html, page
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'src="assets/javascripts/iframe-worker/shim.js"' in index
    assert (site / "assets" / "javascripts" / "iframe-worker" / "shim.js").exists()
    # The offline plugin inlines the search index, so search works without a server.
    assert (site / "search" / "search_index.js").stat().st_size > 10_000


def test_the_search_index_holds_the_words_and_flags_users_look_for(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    text = " ".join(entry["text"] + " " + entry["title"] for entry in index["docs"])
    for word in ("spare", "heartbeat", "devices", "--devices", "--pareto", "leaders"):
        assert word in text, word
    # The generated references are in the index too.
    locations = {entry["location"].split("#")[0] for entry in index["docs"]}
    assert {"reference/cli.html", "reference/config.html", "reference/api.html"} <= locations


def page_requests_to_the_web(net_log: Path) -> list[str]:
    """The http(s) requests a page made. Chromium's own background requests (updates,
    accounts) carry the initiator "not an origin"; a page's carry its origin ("null" for a
    file:// page)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and str(event.get("params", {}).get("url", "")).startswith(("http:", "https:"))
        and event["params"].get("initiator") != "not an origin"
    ]


def render(browser: str, url: str, profile: str, net_log: Path) -> str:
    done = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_site_opens_from_its_folder_with_navigation_and_search(
    site: Path, tmp_path: Path
) -> None:
    browser = chromium()
    home = (site / "index.html").as_uri()
    with tempfile.TemporaryDirectory(prefix="hpsearch-chromium-") as profile:
        net_log = tmp_path / "home.json"
        dom = render(browser, home, profile, net_log)
        assert page_requests_to_the_web(net_log) == []
        # The navigation is there and every link in it leads to a page in the folder.
        links = set(re.findall(r'class="md-nav__link[^"]*"[^>]*href="([^"#]+)"', dom))
        links |= set(re.findall(r'href="([^"#]+)"[^>]*class="md-nav__link', dom))
        assert {"getting-started/index.html", "reference/cli.html", "concepts/pruning.html"} <= {
            link.removeprefix("./") for link in links
        }, links
        for link in links:
            target = site / link.split("?")[0]
            assert target.is_file() or (target / "index.html").is_file(), link

        for query, pages in SEARCHES.items():
            net_log = tmp_path / f"search-{query.replace(' ', '-')}.json"
            dom = render(browser, f"{home}?q={quote_plus(query)}", profile, net_log)
            found = re.findall(r'href="([^"]+)"[^>]*class="md-search-result__link', dom)
            assert found, f"searching {query!r} found nothing"
            assert any(page in link for page in pages for link in found), (query, found)
            assert page_requests_to_the_web(net_log) == [], query
