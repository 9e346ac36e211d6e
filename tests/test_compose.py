"""docker-compose.yml, checked without a Docker engine: the Compose schema, every mounted file,
every command (a real `gslb` subcommand whose config files load), and the configs themselves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from bgp.config import load_site
from bgp.exabgp_conf import EXABGP_ENV, render
from gslb.cli import build_parser
from gslb.config import load_config
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT

COMPOSE = os.path.join(ROOT, "docker-compose.yml")


@pytest.fixture(scope="module")
def compose() -> dict:
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def mounts(service: dict) -> dict[str, str]:
    """container path → repo path, for bind mounts of repo files."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = os.path.join(ROOT, source[2:])
    return out


def host_path(service: dict, container_path: str) -> str:
    for target, source in mounts(service).items():
        if container_path == target or container_path.startswith(target + "/"):
            return source + container_path[len(target):]
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_valid_against_the_compose_specification(compose):
    with open(os.path.join(ROOT, "tests/data/compose/compose-spec.json")) as f:
        schema = json.load(f)
    schema.pop("$schema", None)  # the file names a draft URL jsonschema does not bundle
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_every_mounted_file_and_build_context_exists(compose):
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            assert os.path.exists(source), f"{name}: {source} missing"
        build = service.get("build")
        if build:
            assert os.path.isdir(os.path.join(ROOT, build["context"]))
            dockerfile = os.path.join(ROOT, build["context"], build.get("dockerfile", "Dockerfile"))
            with open(dockerfile) as f:
                for line in f:
                    if line.startswith("COPY "):
                        for src in line.split()[1:-1]:
                            assert os.path.exists(os.path.join(ROOT, src)), f"{dockerfile}: COPY {src}"


def test_references_between_services_resolve(compose):
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in services


def test_every_gslb_command_is_real_and_its_config_loads(compose):
    parser = build_parser()
    seen = set()
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or command[0] != "gslb":
            continue
        args = parser.parse_args(command[1:])  # SystemExit here = not a real subcommand/flag
        seen.add(args.command)
        if args.command == "serve":
            cfg = load_config(host_path(service, args.config))
            zones_dir = host_path(service, "/etc/gslb/zones")
            assert load_zones(zones_dir, cfg)[0], name
        elif args.command == "probe":
            assert load_zones(host_path(service, args.zones), load_config(None))[0], name
        elif args.command == "bgp":
            site = load_site(host_path(service, args.site))
            assert site.neighbors and site.prefixes
        elif args.command == "web":
            assert os.path.exists(host_path(service, args.token_file))
    assert seen == {"serve", "probe", "bgp", "web"}


@pytest.mark.parametrize("site", ["a", "b"])
def test_generated_exabgp_config_validates(site, tmp_path):
    cfg = load_site(os.path.join(ROOT, f"deploy/site-{site}.yaml"))
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render(cfg))
    exabgp = shutil.which("exabgp") or os.path.join(os.path.dirname(sys.executable), "exabgp")
    r = subprocess.run([exabgp, "validate", str(conf)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **EXABGP_ENV})
    assert r.returncode == 0, r.stdout + r.stderr


def test_bird_config_parses():
    bird = shutil.which("bird")
    assert bird, "bird2 is installed by scripts/setup"
    r = subprocess.run([bird, "-p", "-c", os.path.join(ROOT, "deploy/bird/bird.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
