#!/usr/bin/env python3
"""Checks template.yaml against the code's published contract: every HTTP
route the template wires to a function is one the function serves, and the
other way round. docs/openapi.json describes the whole API; each operation's
tag names the function that serves it, and the routers are tied to those
operations by the functions' own tests, so this closes the loop. Prints what
differs and exits non-zero when anything does.
"""
import json
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent


class CloudFormationLoader(yaml.SafeLoader):
    pass


CloudFormationLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: loader.construct_scalar(node)
    if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node)
    if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node),
)


def template_routes(function):
    template = yaml.load((root / "template.yaml").read_text(), Loader=CloudFormationLoader)
    events = template["Resources"][function]["Properties"].get("Events", {})
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in events.values()
        if event["Type"] == "HttpApi"
    }


def documented_routes(tag):
    spec = json.loads((root / "docs" / "openapi.json").read_text())
    return {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if tag in operation.get("tags", [])
    }


def main():
    failures = 0
    for function, tag in [("CommandApiFunction", "command-api"), ("QueryApiFunction", "query-api")]:
        wired, served = template_routes(function), documented_routes(tag)
        for route in sorted(wired - served):
            print(f"template.yaml wires {route} to {function}, which does not serve it")
        for route in sorted(served - wired):
            print(f"{function} serves {route}, which template.yaml does not wire")
        failures += len(wired ^ served)
    if not failures:
        print("template.yaml wires exactly the routes the functions serve")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
