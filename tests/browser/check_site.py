"""Open every page of the built book in a real browser and check what a reader sees.

Serves the built site (default ``_build/html``) on 127.0.0.1, drives Debian's
headless Chromium through chromedriver (Selenium), and checks on every page:

- it loads without errors in the browser console (requests to other hosts are
  never sent: their names do not resolve, and they are listed, not failed);
- every image from the site loads (``naturalWidth > 0``), and no request for a
  file of the site gets an HTTP error;
- every dropdown opens when clicked: exercise solutions and other toggled
  admonitions, and ``<details>`` blocks (hidden code, follow-up questions);
- glued numbers are present: no empty glue output, no quoted string glued by
  mistake, no unresolved ``{glue:...}`` role left in the text, and none in bold
  unless the text around it asks for bold;
- launch buttons: a page built from a notebook links to Binder and Colab with
  that notebook's path in the repository of ``_config.yml``, and the file exists;
  other pages have no launch buttons;

and that the search page finds a term. Exit status 1 lists every problem.

Run: python tests/browser/check_site.py [_build/html] (see --help). CI runs it
after the strict build (.ci/run).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
    # Only this machine is reachable: other host names do not resolve, so the browser
    # sends nothing off the machine (a CDN script is listed as external, not loaded).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
SKIPPED_DIRS = ("_static", "_sources", "_images", "_sphinx_design_static", "_panels_static")


@dataclass
class Report:
    """What the check saw, page by page."""

    pages: int = 0
    images: int = 0
    dropdowns: int = 0
    solutions: int = 0
    glued: int = 0
    launch_pages: int = 0
    search_results: int = 0
    external: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def fail(self, page: str, message: str) -> None:
        problem = f"{page}: {message}"
        if problem not in self.problems:
            self.problems.append(problem)


# ------------------------------------------------------------------ the local server


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site quietly and remembers every request that failed."""

    failed: list[tuple[int, str]]

    def log_message(self, format: str, *args) -> None:   # noqa: A002 (stdlib name)
        pass

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        self.failed.append((code, self.path))
        super().send_error(code, message, explain)


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, list[tuple[int, str]]]:
    failed: list[tuple[int, str]] = []
    handler = functools.partial(type("Handler", (_Handler,), {"failed": failed}),
                                directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, failed


# ------------------------------------------------------------------ the browser


def browser(chromium: str, chromedriver: str, profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    return driver


def wait_for(driver: webdriver.Chrome, script: str, seconds: float = 10) -> bool:
    """Wait until ``script`` (a JS expression) is truthy; False on time-out."""
    try:
        WebDriverWait(driver, seconds, poll_frequency=0.1).until(
            lambda d: d.execute_script(f"return {script}"))
        return True
    except TimeoutException:
        return False


def console_errors(driver: webdriver.Chrome, origin: str, report: Report) -> list[str]:
    """SEVERE console messages, minus failed requests to other (unresolvable) hosts."""
    errors = []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        message = entry["message"]
        url = message.split(" ", 1)[0]
        if url == f"{origin}/favicon.ico":   # requested by the browser, not by the page
            continue
        if (url.startswith(("http://", "https://")) and not url.startswith(origin)
                and "ERR_NAME_NOT_RESOLVED" in message):
            report.external.add(urlsplit(url).netloc)
            continue
        errors.append(message)
    return errors


IMAGES_JS = """
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
return images.map(img => ({src: img.currentSrc || img.src, complete: img.complete,
                           width: img.naturalWidth}));
"""

GLUE_JS = """
const pasted = Array.from(document.querySelectorAll(
    '.pasted-text, .pasted-inline, .pasted-block, .pasted-text-plain'));
const body = document.querySelector('main') || document.body;
const copy = body.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight').forEach(e => e.remove());
const bold = e => parseInt(getComputedStyle(e).fontWeight) >= 600
    && !e.parentElement.closest('strong, b, th, h1, h2, h3, h4, h5, h6, .admonition-title');
return {values: pasted.map(e => e.textContent.trim()), text: copy.textContent,
        bold: pasted.filter(bold).map(e => e.textContent.trim())};
"""


def check_images(driver: webdriver.Chrome, page: str, origin: str, report: Report) -> None:
    driver.execute_script(IMAGES_JS)
    wait_for(driver, "Array.from(document.images).every(i => i.complete)", 10)
    for image in driver.execute_script(IMAGES_JS):
        if not image["src"].startswith(origin):
            if image["src"].startswith(("http://", "https://")):
                report.external.add(urlsplit(image["src"]).netloc)
            continue
        report.images += 1
        if not (image["complete"] and image["width"] > 0):
            report.fail(page, f"image does not load: {image['src'][len(origin):]}")


def check_glue(driver: webdriver.Chrome, page: str, report: Report) -> None:
    found = driver.execute_script(GLUE_JS)
    for value in found["values"]:
        report.glued += 1
        if not value:
            report.fail(page, "a glued value is empty")
        elif len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
            report.fail(page, f"a glued value is a quoted string: {value} (use :s or glue "
                              f"a formatted number)")
    for value in found["bold"]:
        report.fail(page, f"a glued value is bold without markup asking for it: {value}")
    for pattern in (r"\{glue:?[a-z]*\}", r"\{glue\}"):
        leftover = re.search(pattern + r"`?[^`\s]*`?", found["text"])
        if leftover:
            report.fail(page, f"unresolved glue role in the text: {leftover.group(0)}")


def check_dropdowns(driver: webdriver.Chrome, page: str, report: Report) -> None:
    """Click every collapsed dropdown and check that its content becomes visible."""
    toggles = driver.find_elements(By.CSS_SELECTOR, ".admonition.toggle")
    for i, toggle in enumerate(toggles):
        label = f"dropdown {i + 1} ({toggle.get_attribute('class')})"
        if "toggle-hidden" not in (toggle.get_attribute("class") or ""):
            continue
        title = toggle.find_element(By.CSS_SELECTOR, ".admonition-title")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", title)
        title.click()
        opened = wait_for(driver, f"""(() => {{
            const t = document.querySelectorAll('.admonition.toggle')[{i}];
            const body = Array.from(t.children).filter(
                c => !c.classList.contains('admonition-title'));
            return !t.classList.contains('toggle-hidden')
                && body.length > 0 && body.some(c => c.getClientRects().length > 0);
        }})()""", 5)
        report.dropdowns += 1
        report.solutions += "solution" in (toggle.get_attribute("class") or "")
        if not opened:
            report.fail(page, f"{label} does not open when clicked")
    details = driver.find_elements(By.CSS_SELECTOR, "details")
    for i, block in enumerate(details):
        if block.get_attribute("open") is not None:
            continue
        summary = block.find_element(By.CSS_SELECTOR, "summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
        summary.click()
        opened = wait_for(driver, f"""(() => {{
            const d = document.querySelectorAll('details')[{i}];
            const body = Array.from(d.children).filter(c => c.tagName !== 'SUMMARY');
            return d.open && body.some(c => c.getClientRects().length > 0);
        }})()""", 5)
        report.dropdowns += 1
        if not opened:
            report.fail(page, f"<details> block {i + 1} does not open when clicked")


def expected_launch(page: str, config: dict, repo: Path) -> tuple[str, str] | None:
    """Binder and Colab links of a page built from a notebook of ``repo`` (the folder
    of ``_config.yml``), or None for a page without a notebook."""
    notebook = f"{page[: -len('.html')]}.ipynb"
    if not (repo / notebook).is_file():
        return None
    repository, launch = config["repository"], config["launch_buttons"]
    owner_repo = urlsplit(repository["url"]).path.strip("/")
    branch = repository.get("branch", "main")
    ui = {"jupyterlab": "lab/tree", "classic": "tree"}[launch.get("notebook_interface",
                                                                  "classic")]
    binder = (f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}"
              f"?urlpath={ui}/{notebook}")
    colab = f"{launch['colab_url'].rstrip('/')}/github/{owner_repo}/blob/{branch}/{notebook}"
    return binder, colab


def check_launch(driver: webdriver.Chrome, page: str, config: dict, repo: Path,
                 report: Report) -> None:
    links = driver.execute_script("""return Array.from(document.querySelectorAll(
        '.dropdown-launch-buttons a, a.btn-launch, [class*="launch"] a')).map(a => a.href)""")
    launch = config["launch_buttons"]
    hosts = (launch["binderhub_url"].rstrip("/"), launch["colab_url"].rstrip("/"))
    links = sorted({href for href in links if href.startswith(hosts)})
    expected = expected_launch(page, config, repo)
    if expected is None:
        if links:
            report.fail(page, f"launch buttons on a page that is not a notebook: {links}")
        return
    report.launch_pages += 1
    for name, url in zip(("Binder", "Colab"), expected, strict=True):
        if url not in links:
            report.fail(page, f"{name} button should point at {url}; found {links}")


def check_search(driver: webdriver.Chrome, origin: str, term: str, report: Report) -> None:
    driver.get(f"{origin}/search.html?q={quote(term)}")
    # Sphinx's search adds results as it finds them; it is done when it says so.
    found = wait_for(driver, "/search finished|did not match/i.test("
                             "(document.querySelector('#search-results') || {}).textContent "
                             "|| '')", 30)
    results = driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results li a'))"
        ".map(a => a.href)")
    report.search_results = len(results)
    if not found or not results:
        report.fail("search.html", f"searching for {term!r} finds nothing")


def pages_of(site: Path) -> list[str]:
    return sorted(str(path.relative_to(site)) for path in site.rglob("*.html")
                  if path.relative_to(site).parts[0] not in SKIPPED_DIRS)


def check_site(site: Path, chromium: str, chromedriver: str, term: str,
               config: dict, repo: Path) -> Report:
    report = Report()
    server, failed = serve(site)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = browser(chromium, chromedriver, profile)
        try:
            for page in pages_of(site):
                failed.clear()
                driver.get(f"{origin}/{page}")
                wait_for(driver, "document.readyState === 'complete'", 20)
                report.pages += 1
                try:
                    check_images(driver, page, origin, report)
                    check_glue(driver, page, report)
                    check_dropdowns(driver, page, report)
                    check_launch(driver, page, config, repo, report)
                except JavascriptException as error:
                    report.fail(page, f"the check's script failed: {error.msg}")
                except WebDriverException as error:   # e.g. a dropdown covered by another
                    report.fail(page, f"the browser could not do what a reader does: "
                                      f"{type(error).__name__}: {error.msg}")
                for message in console_errors(driver, origin, report):
                    report.fail(page, f"console error: {message}")
                for code, path in failed:
                    if path != "/favicon.ico":   # the browser's own guess, not the page's
                        report.fail(page, f"HTTP {code} for {path}")
            failed.clear()
            check_search(driver, origin, term, report)
            for message in console_errors(driver, origin, report):
                report.fail("search.html", f"console error: {message}")
        finally:
            driver.quit()
            server.shutdown()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "_build" / "html",
                        help="the built site (default: _build/html)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="browser binary")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver",
                        help="chromedriver binary (Debian's chromium-driver)")
    parser.add_argument("--search", default="auction", help="a term the search must find")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml",
                        help="the book's _config.yml (repository, launch buttons); its "
                             "folder is the repository whose notebooks the links name")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"error: {args.site} holds no built site (index.html); build the book first",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    config = yaml.safe_load(args.config.read_text())
    report = check_site(args.site, args.chromium, args.chromedriver, args.search, config,
                        args.config.resolve().parent)
    seconds = time.perf_counter() - started
    print(f"browser check: {report.pages} pages, {report.images} images, "
          f"{report.dropdowns} dropdowns opened ({report.solutions} solutions), "
          f"{report.glued} glued values, {report.launch_pages} pages with launch buttons, "
          f"search for {args.search!r}: {report.search_results} results, "
          f"in {seconds:.0f} s")
    if report.external:
        print(f"not checked (other hosts, unreachable here): {sorted(report.external)}")
    for problem in report.problems:
        print(f"FAIL {problem}")
    print(f"browser check: {'FAILED' if report.problems else 'passed'}, "
          f"{len(report.problems)} problem(s)")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
