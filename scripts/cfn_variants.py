#!/usr/bin/env python3
"""Offline helpers for scripts/check-template.sh (run with .venv/bin/python).

  variant  SRC OUT NAME=VALUE...   copy SRC with the Default of each named parameter replaced
                                   (or added), so that linters which only evaluate defaults
                                   (checkov, cfn-lint) see another deployment choice.
  translate SRC OUT                expand AWS::LanguageExtensions (Fn::ForEach, with cfn-lint's
                                   implementation) and then the SAM transform (aws-sam-translator,
                                   as CloudFormation would), using the parameters' defaults;
                                   writes the plain CloudFormation JSON to OUT.

  expand SRC OUT                   expand AWS::LanguageExtensions only (Fn::ForEach over the
                                   parameters' defaults) and keep the SAM transform: the input
                                   `sam build` needs, since SAM CLI cannot parse Fn::ForEach
                                   (aws/aws-sam-cli#5647).

`sam validate` without --lint cannot do the second step: SAM CLI's validate hands Fn::ForEach
to the translator unexpanded and fails ("All 'Resources' must be Objects").
Nothing here uses the network: the managed-policy map that the SAM translator would fetch from
IAM is a stub (the template attaches no managed policy by name).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any


def variant(src: str, out: str, assignments: list[str]) -> None:
    text = open(src, encoding="utf-8").read()
    params_start = re.search(r"^Parameters:\s*$", text, re.M)
    if not params_start:
        sys.exit(f"{src}: no Parameters section")
    params_end = re.search(r"^\S", text[params_start.end():], re.M)
    end = params_start.end() + (params_end.start() if params_end else len(text) - params_start.end())
    section = text[params_start.end():end]
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            sys.exit(f"bad assignment {assignment!r}: want NAME=VALUE")
        block = re.search(rf"^  {re.escape(name)}:\s*\n((?:    .*\n|\s*\n)*)", section, re.M)
        if not block:
            sys.exit(f"{src}: no parameter {name}")
        body = block.group(1)
        line = f"    Default: {json.dumps(value)}\n"
        if re.search(r"^    Default:.*\n", body, re.M):
            body = re.sub(r"^    Default:.*\n", lambda _m: line, body, count=1, flags=re.M)
        else:
            body = line + body
        section = section[: block.start(1)] + body + section[block.end(1):]
    text = text[: params_start.end()] + section + text[end:]
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def _plain(obj: Any) -> Any:
    """cfn-lint's node types -> plain dicts/lists/str (the SAM translator wants plain data)."""
    return json.loads(json.dumps(obj, default=str))


def expand(src: str, out: str) -> None:
    from cfnlint.decode import decode
    from cfnlint.template import Template
    from cfnlint.template.transforms._language_extensions import language_extension

    template, matches = decode(src)
    if matches:
        sys.exit(f"{src}: could not be parsed: {matches}")
    cfn = Template(src, template, ["eu-west-1"])
    matches, expanded = language_extension(cfn)
    if matches:
        sys.exit(f"{src}: AWS::LanguageExtensions expansion failed: {matches}")
    expanded = _plain(expanded)
    transforms = expanded.get("Transform", [])
    transforms = transforms if isinstance(transforms, list) else [transforms]
    expanded["Transform"] = [t for t in transforms if t != "AWS::LanguageExtensions"]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1)


def translate(src: str, out: str) -> None:
    from cfnlint.decode import decode
    from cfnlint.template import Template
    from cfnlint.template.transforms._language_extensions import language_extension
    from samtranslator.translator.transform import transform as sam_transform

    template, matches = decode(src)
    if matches:
        for m in matches:
            print(m, file=sys.stderr)
        sys.exit(f"{src}: could not be parsed")

    transforms = template.get("Transform", [])
    transforms = transforms if isinstance(transforms, list) else [transforms]

    if "AWS::LanguageExtensions" in transforms:
        cfn = Template(src, template, ["eu-west-1"])
        matches, expanded = language_extension(cfn)
        if matches:
            for m in matches:
                print(m, file=sys.stderr)
            sys.exit(f"{src}: AWS::LanguageExtensions expansion failed")
        template = expanded
        transforms = [t for t in transforms if t != "AWS::LanguageExtensions"]
        template["Transform"] = transforms

    template = _plain(template)
    params = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }

    class NoNetworkPolicyLoader:  # stands in for samtranslator's IAM-backed loader
        def load(self) -> dict[str, str]:
            return {}

    # The translator fills AWS::Region from the boto3 default region; no call is made.
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    if "AWS::Serverless-2016-10-31" in transforms:
        # What `sam package` does: local code paths become S3 locations (placeholders here).
        for resource in template.get("Resources", {}).values():
            props = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str) \
                    and not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://placeholder-artifacts-bucket/forwarder.zip"
        template = sam_transform(template, params, NoNetworkPolicyLoader())

    with open(out, "w", encoding="utf-8") as f:
        json.dump(template, f, indent=1, sort_keys=False)
        f.write("\n")


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "variant":
        variant(argv[1], argv[2], argv[3:])
    elif len(argv) == 3 and argv[0] == "translate":
        translate(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "expand":
        expand(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
