"""What the browser tests share (tests/test_web.py, tests/test_caption_web.py): the prerequisites
(Debian's Chromium, node, ``npm ci``'s packages) and a page folder served on 127.0.0.1.

Without the prerequisites a browser test is skipped, except under CI (``CI`` set), where it fails.
"""

import contextlib
import functools
import http.server
import os
import shutil
import threading

import pytest

from draw_tf.export import web_export

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.path.join(ROOT, "node_modules")


def missing() -> list:
  """What a browser test needs and this machine lacks (with how to get it)."""
  found = []
  if not os.path.isfile(CHROMIUM):
    found.append(f"{CHROMIUM} (apt-get install chromium)")
  if not shutil.which("node"):
    found.append("node (apt-get install nodejs)")
  if not os.path.isdir(os.path.join(NODE_MODULES, "playwright-core")):
    found.append("node_modules/playwright-core (npm ci)")
  try:
    web_export.runtime_dir(NODE_MODULES)
  except FileNotFoundError:
    found.append("node_modules/@litertjs/core (npm ci)")
  return found


def require_browser() -> None:
  """Skips the test where the browser or the npm packages are missing; fails under CI."""
  lacking = missing()
  if lacking:
    if os.environ.get("CI"):
      pytest.fail("the browser test must run under CI; missing: " + ", ".join(lacking))
    pytest.skip("no browser test here; missing: " + ", ".join(lacking))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):
    pass


@contextlib.contextmanager
def serve(folder: str):
  """``http.server`` on 127.0.0.1 (a free port) serving ``folder``; yields its base URL."""
  handler = functools.partial(QuietHandler, directory=folder)
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  try:
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
  finally:
    httpd.shutdown()
    httpd.server_close()
