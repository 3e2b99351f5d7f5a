"""Publishing: the Pages workflow builds with the README's command, CI checks the site in
a browser, and the deployment files agree with the service they ship."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from adsys.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: str) -> list[dict]:
    return workflow()["jobs"][job]["steps"]


def test_pages_workflow_builds_with_the_readme_command():
    book_command = readme_commands()[0]
    assert "jupyter-book build . -W -n --keep-going" in book_command
    runs = [step["run"].strip() for step in steps("build") if "run" in step]
    assert book_command in runs, f"pages.yml must run the README's command: {book_command}"


def test_pages_workflow_publishes_the_built_site_from_main():
    config = workflow()
    triggers = config[True] if True in config else config["on"]   # YAML reads `on` as True
    assert triggers["push"]["branches"] == ["main"]
    uploads = [s for s in steps("build") if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@")]
    assert [s["with"]["path"] for s in uploads] == ["_build/html"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in steps("deploy"))
    assert config["permissions"]["pages"] == "write"
    python = next(s for s in steps("build") if s.get("uses", "").startswith(
        "actions/setup-python@"))
    assert python["with"]["python-version"] == (ROOT / "runtime.txt").read_text().strip() \
        .removeprefix("python-")


def test_ci_checks_the_built_site_in_a_browser_after_the_strict_build():
    ci = (ROOT / ".ci" / "run").read_text()
    build = ci.index(readme_commands()[0])
    check = ci.index("tests/browser/check_site.py")
    assert build < check, "the browser check must run after the book is built"
    assert "chromium-driver" in ci, ".ci/run must install the browser it drives"


def test_new_pages_are_in_a_back_matter_part_before_the_reference():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    captions = [part["caption"] for part in toc["parts"]]
    files = {part["caption"]: [c["file"] for c in part["chapters"]] for part in toc["parts"]}
    part = next(c for c in captions if "book/deployment" in files[c])
    assert "book/lab_statistics" in files[part]
    assert captions.index(part) < captions.index("Reference")
    assert "{nb-exec-table}" in (ROOT / "book" / "lab_statistics.md").read_text()


def dockerfile() -> str:
    """The Dockerfile with continuation lines joined, as Docker reads it."""
    return (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", "")


def docker_command() -> list[str]:
    return json.loads(re.search(r"^CMD (\[.*\])$", dockerfile(), re.M).group(1))


def test_the_container_runs_the_serve_command_on_its_exposed_port():
    text = dockerfile()
    command = docker_command()
    assert command[:3] == ["python", "-m", "adsys"]
    args = build_parser().parse_args(command[3:])
    assert args.command == "serve" and args.host == "0.0.0.0"
    assert f"EXPOSE {args.port}" in text
    health = re.search(r"^HEALTHCHECK .*$", text, re.M).group(0)
    assert f"127.0.0.1:{args.port}/health" in health


def test_kubernetes_runs_the_same_command_and_probes_the_health_endpoint():
    from adsys.service import create_app

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == docker_command()
    port = build_parser().parse_args(container["args"][3:]).port
    assert [p["containerPort"] for p in container["ports"]] == [port]
    routes = {route.path for route in create_app(ROOT).routes}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert deployment["spec"]["replicas"] >= 2


@pytest.fixture(scope="module")
def check_site():
    path = ROOT / "tests" / "browser" / "check_site.py"
    spec = importlib.util.spec_from_file_location("check_site", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_browser_check_expects_launch_links_to_the_lab_in_the_configured_repository(
        check_site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    lab = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0]
    page = f"notebooks/{lab.stem}.html"
    binder, colab = check_site.expected_launch(page, config, ROOT)
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    branch = config["repository"]["branch"]
    assert binder == (f"https://mybinder.org/v2/gh/{repo}/{branch}"
                      f"?urlpath=lab/tree/notebooks/{lab.name}")
    assert colab == (f"https://colab.research.google.com/github/{repo}/blob/{branch}/"
                     f"notebooks/{lab.name}")
    assert check_site.expected_launch("book/deployment.html", config, ROOT) is None


def test_browser_check_keeps_chromium_on_this_machine(check_site):
    flags = " ".join(check_site.CHROMIUM_FLAGS)
    for flag in ("--headless", "--no-sandbox", "--disable-background-networking",
                 "--host-resolver-rules"):
        assert flag in flags
