"""Fixes to the generated site, each found and checked by tests/browser/check_site.py.

Loaded from ``_config.yml`` (``sphinx.local_extensions``).

1. **Launch buttons only on notebook pages.** sphinx-book-theme gives Binder and
   Colab buttons to every page that executes code, MyST Markdown pages included
   (book/performance.md, book/deployment.md). Their buttons would open a ``.md``
   file, which Colab cannot run. They are removed from every page whose source is
   not an ``.ipynb`` (or paired with one); the labs keep theirs.
2. **Inline scripts once.** With this Sphinx, a script added as inline code by an
   extension after the builder starts (sphinx-thebe's configuration) is written
   into every page twice, and the second ``const THEBE_JS_URL`` is a console error
   on every page. Repeated inline scripts are dropped.
3. **Solution titles open their solution.** sphinx-togglebutton makes a dropdown's
   whole title clickable, but a click on a link inside the title (a solution's
   title links to its exercise) throws ``button is not defined`` and nothing
   opens. A replacement click handler finds the toggle button from any element of
   the title and opens the dropdown in place, without jumping to the exercise.
4. **A colour mode from the start.** The theme reads its light/dark mode from the
   page, which leaves it empty, so a reader's first page logs "Got invalid theme
   mode" before falling back to "auto". The page now says "auto" itself.
5. **Glued numbers are not bold.** myst-nb sets every glued value in bold; the
   course's numbers read like the text around them (``static/site_fixes.css``),
   and bold only where an author writes it.
"""

from __future__ import annotations

from pathlib import Path

TOGGLE_FIX = """
toggleClickHandler = (click) => {
  const title = click.target.closest(".admonition-title");
  const button = click.target.closest(".toggle-button")
    || (title && title.querySelector(".toggle-button"));
  if (!button) { return; }
  if (click.target.closest("a")) { click.preventDefault(); }
  toggleHidden(document.getElementById(button.dataset["button"]));
};
"""


def _launch_buttons_only_on_notebooks(app, pagename, templatename, context, doctree) -> None:
    source = Path(app.env.doc2path(pagename))
    if source.suffix == ".ipynb" or source.with_suffix(".ipynb").exists():
        return
    buttons = context.get("header_buttons")
    if buttons:
        buttons[:] = [b for b in buttons if b.get("label") != "launch-buttons"]


def _inline_scripts_once(app, pagename, templatename, context, doctree) -> None:
    scripts, seen = context.get("script_files"), set()
    if not scripts:
        return
    kept = []
    for script in scripts:
        body = getattr(script, "attributes", {}).get("body")
        if body is not None:
            if body in seen:
                continue
            seen.add(body)
        kept.append(script)
    scripts[:] = kept


def _colour_mode(app, pagename, templatename, context, doctree) -> None:
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def _static_path(app) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    # After sphinx-book-theme adds its buttons (priority 501).
    app.connect("html-page-context", _launch_buttons_only_on_notebooks, priority=502)
    app.connect("html-page-context", _inline_scripts_once, priority=900)
    app.connect("html-page-context", _colour_mode)
    # After togglebutton.js (priority 500), before the page finishes loading.
    app.add_js_file(None, body=TOGGLE_FIX, priority=600)
    app.connect("builder-inited", _static_path)
    app.add_css_file("site_fixes.css", priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
