"""A folder served on 127.0.0.1 and Debian's headless Chromium driving it: what the page tests and `make pdf` share.

Debian's ``chromium`` is driven through Debian's ``chromium-driver`` (the same version), by Selenium with its
download manager switched off: nothing is fetched from the network.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class BrowserMissing(RuntimeError):
    """Debian's chromium or chromium-driver is not installed."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    aliases: dict[str, str] = {}
    failures: list[str] = []

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        if str(code).isdigit() and int(code) >= 400:
            self.failures.append(f"HTTP {code} for {self.path}")

    def translate_path(self, path):
        return super().translate_path(self.aliases.get(path.split("?", 1)[0], path))


class Server:
    """``root`` on 127.0.0.1, on a free port, in a thread; records 4xx/5xx answers in ``failures``;
    ``aliases`` serve a file under another URL path."""

    def __init__(self, root: Path, aliases: dict[str, str] | None = None):
        self.failures: list[str] = []
        handler = type("Handler", (_Handler,), {"aliases": dict(aliases or {}), "failures": self.failures})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def start_browser(*, width: int = 1280, height: int = 900, timeout_s: float = 120, console_log: bool = False):
    """A headless Chromium window of ``width`` x ``height`` CSS pixels; raises :class:`BrowserMissing`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        raise BrowserMissing("Debian's chromium and chromium-driver are required: run `make system-deps`")
    os.environ.setdefault("SE_OFFLINE", "true")       # Selenium Manager must never download a browser
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions",
                "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--window-size={width},{height}", "--lang=en-US"):
        options.add_argument(arg)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(timeout_s)
    driver.set_script_timeout(timeout_s)
    return driver


# Resolves once every image has loaded (or failed) and MathJax, when the page has math, has typeset everything.
SETTLE_JS = r"""
const done = arguments[arguments.length - 1];
const images = Array.from(document.images, (img) => {
  img.loading = 'eager';
  return img.complete ? null : new Promise((ok) => { img.onload = img.onerror = ok; });
});
const hasMath = document.querySelector('.math') !== null;
const mathjax = new Promise((ok) => {
  const start = Date.now();
  (function poll() {
    if (!hasMath) return ok('no math');
    if (window.MathJax && MathJax.startup && MathJax.startup.promise && MathJax.typesetPromise) {
      return MathJax.startup.promise.then(() => MathJax.typesetPromise())
        .then(() => ok('typeset'), (e) => ok('failed: ' + e));
    }
    // The page has loaded (deferred scripts included) when this runs: a MathJax that has not started within
    // a few seconds never will (its script failed to load).
    if (Date.now() - start > 5000) return ok('MathJax never started');
    setTimeout(poll, 25);
  })();
});
Promise.all([mathjax, ...images]).then(([m]) => requestAnimationFrame(() => requestAnimationFrame(() => done(m))));
"""
