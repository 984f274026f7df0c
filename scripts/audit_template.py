#!/usr/bin/env python3
"""Audit ethnode's CloudFormation template: every IAM policy through parliament, the template through checkov.

Usage: .venv-judges/bin/python scripts/audit_template.py [TEMPLATE] [--no-checkov] [--community-auditors] [--show-rendered]

Needs parliament 1.6.x, checkov 3.x and cfn-lint 1.x in the same interpreter (.venv-judges, made by scripts/tools.sh).

1. The template is read with cfn-lint's YAML decoder (short-form intrinsics parsed).
2. Every IAM policy document (inline role policies, AWS::IAM::Policy, AWS::IAM::ManagedPolicy, and role trust
   policies) is rendered to concrete JSON with placeholder values (account 123456789012, us-east-1, stack
   ethnode-mainnet); each combination of the Fn::If conditions the document uses is rendered and audited.
   Trust policies get the role's own ARN as Resource so that parliament can analyze them.
3. parliament runs on each rendered document. Findings are accepted only in two documented cases:
   - RESOURCE_MISMATCH for an action whose resource types are split over several statements of the same policy
     (e.g. ec2:CreateSnapshot: volume in one statement, snapshot in another) when the union of the resources
     of all Allow statements for that action covers every required resource type and every one of those
     resources matches a resource type of the action (or of another action of its own statement);
   - RESOURCE_MISMATCH caused by an AWS public SSM parameter (arn:aws:ssm:REGION::parameter/aws/service/...),
     whose ARN has no account id.
   Everything else fails the run, as do this script's own checks: a resource that matches no resource type
   of any action of its statement, and an ARN that lacks the account id its resource type requires.
4. checkov scans the template; any failed check fails the run (checks skipped in the template's
   Metadata: checkov: skip: are counted, not failed).

Exit status: 0 when everything passes, 1 otherwise (2 for usage or load errors).
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "cloudformation" / "ethnode.yml"

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "ethnode-mainnet"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": STACK,
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": [],
}
NOVALUE = object()  # Ref AWS::NoValue: the enclosing key or list item disappears

# Ref of a resource whose Ref is an id rather than a name.
REF_IDS = {
    "AWS::Route53::HostedZone": "Z0123456789ABCDEFGHIJ",
    "AWS::EC2::LaunchTemplate": "lt-0123456789abcdef0",
    "AWS::EC2::SecurityGroup": "sg-0123456789abcdef0",
    "AWS::EC2::Instance": "i-0123456789abcdef0",
    "AWS::EC2::Volume": "vol-0123456789abcdef0",
    "AWS::EC2::VPC": "vpc-0123456789abcdef0",
    "AWS::EC2::Subnet": "subnet-0123456789abcdef0",
    "AWS::EC2::EIP": "203.0.113.10",
    "AWS::KMS::Key": "1234abcd-12ab-34cd-56ef-1234567890ab",
}
# Ref of a resource that is its ARN (or URL).
REF_IS_ARN = {"AWS::SNS::Topic", "AWS::ECS::TaskDefinition", "AWS::ECS::Service", "AWS::IAM::ManagedPolicy",
              "AWS::SecretsManager::Secret", "AWS::StepFunctions::StateMachine", "AWS::SQS::Queue"}
# Property that names the resource (Ref returns it when set).
NAME_PROPS = {
    "AWS::SSM::Parameter": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Events::Rule": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::SecretsManager::Secret": "Name",
}
# GetAtt X.Arn (and friends) per resource type; {name} is the physical name or id.
ARN_FORMATS = {
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{name}",
    "AWS::IAM::InstanceProfile": "arn:{p}:iam::{a}:instance-profile/{name}",
    "AWS::IAM::ManagedPolicy": "arn:{p}:iam::{a}:policy/{name}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{name}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{name}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{name}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{name}:*",
    "AWS::S3::Bucket": "arn:{p}:s3:::{name}",
    "AWS::DynamoDB::Table": "arn:{p}:dynamodb:{r}:{a}:table/{name}",
    "AWS::KMS::Key": "arn:{p}:kms:{r}:{a}:key/{name}",
    "AWS::ECS::Cluster": "arn:{p}:ecs:{r}:{a}:cluster/{name}",
    "AWS::ECS::TaskDefinition": "arn:{p}:ecs:{r}:{a}:task-definition/{name}:1",
    "AWS::ECS::Service": "arn:{p}:ecs:{r}:{a}:service/{name}",
    "AWS::ECR::Repository": "arn:{p}:ecr:{r}:{a}:repository/{name}",
    "AWS::SSM::Parameter": "arn:{p}:ssm:{r}:{a}:parameter/{name_noslash}",
    "AWS::SecretsManager::Secret": "arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf",
    "AWS::StepFunctions::StateMachine": "arn:{p}:states:{r}:{a}:stateMachine:{name}",
    "AWS::AutoScaling::AutoScalingGroup":
        "arn:{p}:autoscaling:{r}:{a}:autoScalingGroup:0a1b2c3d-4e5f-6789-abcd-ef0123456789:autoScalingGroupName/{name}",
    "AWS::EC2::LaunchTemplate": "arn:{p}:ec2:{r}:{a}:launch-template/{name}",
    "AWS::EC2::SecurityGroup": "arn:{p}:ec2:{r}:{a}:security-group/{name}",
    "AWS::EC2::Volume": "arn:{p}:ec2:{r}:{a}:volume/{name}",
    "AWS::EC2::Instance": "arn:{p}:ec2:{r}:{a}:instance/{name}",
}
ARN_ATTRS = {"Arn", "TopicArn", "QueueArn", "StreamArn", "ClusterArn", "ServiceArn", "TaskDefinitionArn",
             "PolicyArn", "SecretArn"}
OTHER_ATTRS = {
    ("AWS::EC2::LaunchTemplate", "LatestVersionNumber"): "1",
    ("AWS::EC2::LaunchTemplate", "DefaultVersionNumber"): "1",
    ("AWS::EC2::LaunchTemplate", "LaunchTemplateId"): "lt-0123456789abcdef0",
    ("AWS::Route53::HostedZone", "Id"): "Z0123456789ABCDEFGHIJ",
    ("AWS::Route53::HostedZone", "NameServers"): ["ns-1.awsdns-01.org", "ns-2.awsdns-02.com"],
    ("AWS::IAM::Role", "RoleId"): "AROA0123456789EXAMPLE",
    ("AWS::EC2::SecurityGroup", "GroupId"): "sg-0123456789abcdef0",
    ("AWS::SQS::Queue", "QueueName"): None,  # the name, filled in below
}
# Parameter placeholders by type (when the parameter has no usable Default).
PARAM_PLACEHOLDERS = {
    "AWS::EC2::VPC::Id": "vpc-0123456789abcdef0",
    "AWS::EC2::Subnet::Id": "subnet-0123456789abcdef0",
    "AWS::EC2::SecurityGroup::Id": "sg-0123456789abcdef0",
    "AWS::EC2::KeyPair::KeyName": "ethnode-key",
    "AWS::EC2::Image::Id": "ami-0123456789abcdef0",
    "AWS::EC2::Instance::Id": "i-0123456789abcdef0",
    "AWS::EC2::Volume::Id": "vol-0123456789abcdef0",
    "AWS::Route53::HostedZone::Id": "Z0123456789ABCDEFGHIJ",
}

PUBLIC_SSM_PARAM = re.compile(r"^arn:[^:]*:ssm:[^:]*::parameter/aws/service/")


class TemplateError(Exception):
    pass


# ------------------------------------------------------------------------------------------------------------
# template loading and intrinsic rendering


def plain(node):
    """cfn-lint's node classes -> plain dict/list/str (keeps bools and numbers)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def load_template(path):
    from cfnlint.decode import cfn_yaml

    return plain(cfn_yaml.load(str(path)))


def if_conditions(node, found=None):
    """Names of the conditions used by Fn::If anywhere in node, in first-seen order."""
    found = [] if found is None else found
    if isinstance(node, dict):
        if set(node) == {"Fn::If"} and isinstance(node["Fn::If"], list) and node["Fn::If"]:
            name = node["Fn::If"][0]
            if name not in found:
                found.append(name)
        for v in node.values():
            if_conditions(v, found)
    elif isinstance(node, list):
        for v in node:
            if_conditions(v, found)
    return found


class Renderer:
    """Renders intrinsics to concrete values under one assignment of the template's conditions."""

    def __init__(self, template, assignment=None):
        self.t = template
        self.params = template.get("Parameters") or {}
        self.resources = template.get("Resources") or {}
        self.mappings = template.get("Mappings") or {}
        self.assignment = assignment or {}

    # -- values of names
    def param_value(self, name):
        p = self.params[name]
        ptype = str(p.get("Type", "String"))
        default = p.get("Default")
        inner = re.match(r"^AWS::SSM::Parameter::Value<(.+)>$", ptype)
        if inner:  # the parameter resolves to the value of the SSM parameter it names
            ptype, default = inner.group(1), None
        is_list = ptype.startswith("List<") or ptype == "CommaDelimitedList"
        if default not in (None, ""):
            return [s.strip() for s in str(default).split(",")] if is_list else str(default)
        elem = ptype[5:-1] if ptype.startswith("List<") else ptype
        value = PARAM_PLACEHOLDERS.get(elem)
        if value is None:
            allowed = p.get("AllowedValues")
            value = str(allowed[0]) if allowed else ("1" if elem == "Number" else f"example-{name.lower()}")
        return [value] if is_list else value

    def physical_name(self, lid):
        res = self.resources[lid]
        rtype = res.get("Type", "")
        if rtype in REF_IDS:
            return REF_IDS[rtype]
        prop = NAME_PROPS.get(rtype)
        props = res.get("Properties") or {}
        if prop and prop in props:
            value = self.render(props[prop])
            if isinstance(value, str):
                return value
        return lid

    def ref(self, name):
        if name == "AWS::NoValue":
            return NOVALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.param_value(name)
        if name in self.resources:
            rtype = self.resources[name].get("Type", "")
            if rtype in REF_IS_ARN:
                if rtype == "AWS::SQS::Queue":
                    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_name(name)}"
                return self.arn_of(name)
            return self.physical_name(name)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def arn_of(self, lid):
        rtype = self.resources[lid].get("Type", "")
        name = self.physical_name(lid)
        fmt = ARN_FORMATS.get(rtype)
        if fmt is None:  # generic: arn:aws:SERVICE:REGION:ACCOUNT:kind/name
            parts = rtype.split("::")
            svc = parts[1].lower() if len(parts) > 1 else "unknown"
            kind = parts[2].lower() if len(parts) > 2 else "resource"
            fmt = "arn:{p}:" + svc + ":{r}:{a}:" + kind + "/{name}"
        return fmt.format(p=PARTITION, r=REGION, a=ACCOUNT, name=name, name_noslash=name.lstrip("/"))

    def getatt(self, lid, attr):
        if lid not in self.resources:
            raise TemplateError(f"GetAtt of unknown resource {lid!r}")
        rtype = self.resources[lid].get("Type", "")
        if (rtype, attr) in OTHER_ATTRS:
            value = OTHER_ATTRS[(rtype, attr)]
            return self.physical_name(lid) if value is None else value
        if attr in ARN_ATTRS:
            return self.arn_of(lid)
        if attr in ("Name", "Id") or attr.endswith("Name"):
            return self.physical_name(lid)
        return f"{lid}.{attr}"

    # -- intrinsics
    def sub(self, template_str, variables):
        def one(m):
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                value = variables[expr]
            elif "." in expr and expr.split(".", 1)[0] in self.resources:
                value = self.getatt(*expr.split(".", 1))
            else:
                value = self.ref(expr)
            if isinstance(value, list) or value is NOVALUE:
                raise TemplateError(f"Fn::Sub variable {expr!r} is not a string")
            return str(value)

        return re.sub(r"\$\{([^}]*)\}", one, template_str)

    def render(self, node):
        if isinstance(node, list):
            out = [self.render(v) for v in node]
            return [v for v in out if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], self.render(arg[1]))
                return self.getatt(lid, attr)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                variables = {k: self.render(v) for k, v in (arg[1] or {}).items()}
                return self.sub(arg[0], variables)
            if key == "Fn::If":
                cond, yes, no = arg
                if cond not in self.assignment:
                    raise TemplateError(f"Fn::If on condition {cond!r} without an assignment")
                return self.render(yes if self.assignment[cond] else no)
            if key == "Fn::Join":
                delim, items = arg
                items = self.render(items)
                if not isinstance(items, list):
                    raise TemplateError("Fn::Join of a non-list")
                return str(delim).join(str(i) for i in items)
            if key == "Fn::Select":
                idx, items = self.render(arg[0]), self.render(arg[1])
                return items[int(idx)]
            if key == "Fn::Split":
                delim, s = arg
                return str(self.render(s)).split(delim)
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.render(a) for a in arg[:3])
                return self.render(self.mappings[m][k1][k2])
            if key == "Fn::ImportValue":
                return f"imported-{self.render(arg)}"
            if key == "Fn::GetAZs":
                return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
            if key == "Fn::Base64":
                return self.render(arg)
            if key == "Fn::Cidr":
                return ["10.0.0.0/24", "10.0.1.0/24"]
        out = {}
        for k, v in node.items():
            rv = self.render(v)
            if rv is not NOVALUE:
                out[k] = rv
        return out


def render_variants(template, node, max_conditions=10):
    """[(label, rendered)] for every assignment of the Fn::If conditions in node, identical renderings merged."""
    conds = if_conditions(node)
    if len(conds) > max_conditions:
        raise TemplateError(f"{len(conds)} conditions in one document; refusing 2^{len(conds)} variants")
    seen = {}
    for values in itertools.product([True, False], repeat=len(conds)):
        assignment = dict(zip(conds, values))
        rendered = Renderer(template, assignment).render(node)
        key = json.dumps(rendered, sort_keys=True, default=str)
        label = ",".join(f"{c}={'T' if v else 'F'}" for c, v in assignment.items())
        if key in seen:
            seen[key][0].append(label)
        else:
            seen[key] = ([label], rendered)
    variants = list(seen.values())
    if len(variants) == 1:
        return [("", variants[0][1])]
    return [(" | ".join(labels), rendered) for labels, rendered in variants]


# ------------------------------------------------------------------------------------------------------------
# policy discovery


def find_policies(template):
    """[(label, kind, resource logical id, document node)] with kind 'identity' or 'trust'."""
    out = []
    resources = template.get("Resources") or {}
    for lid, res in resources.items():
        rtype = res.get("Type")
        props = res.get("Properties") or {}
        if rtype == "AWS::IAM::Role":
            if "AssumeRolePolicyDocument" in props:
                out.append((f"{lid}/trust", "trust", lid, props["AssumeRolePolicyDocument"]))
            policies = props.get("Policies") or []
            if isinstance(policies, dict):  # e.g. a bare Fn::If around the list
                policies = [policies]
            for i, pol in enumerate(policies):
                name = pol.get("PolicyName", f"#{i}") if isinstance(pol, dict) else f"#{i}"
                if not isinstance(name, str):
                    name = str(Renderer(template).render(name)) if not if_conditions(name) else f"#{i}"
                doc = pol.get("PolicyDocument") if isinstance(pol, dict) else None
                if doc is None:
                    # A policy entry under Fn::If: audit the whole entry's variants as documents.
                    doc = {"Fn::If": pol["Fn::If"]} if isinstance(pol, dict) and "Fn::If" in pol else None
                    if doc is None:
                        continue
                out.append((f"{lid}/{name}", "identity", lid, doc))
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and "PolicyDocument" in props:
            out.append((lid, "identity", lid, props["PolicyDocument"]))
    return out


# ------------------------------------------------------------------------------------------------------------
# parliament and this script's own checks


def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def expand(action):
    from parliament import expand_action

    try:
        return [f"{a['service']}:{a['action']}" for a in expand_action(action)]
    except Exception:
        return []


def privilege(action):
    from parliament import iam_definition

    prefix, name = action.split(":", 1)
    for service in iam_definition:
        if service["prefix"] == prefix:
            for priv in service["privileges"]:
                if priv["privilege"] == name:
                    return service, priv
    return None, None


def action_resource_types(action):
    """[(resource type, arn format with * for variables, required)] that parliament knows for action."""
    service, priv = privilege(action)
    if priv is None:
        return []
    formats = {r["resource"]: re.sub(r"\$\{.*?\}", "*", r["arn"]) for r in service["resources"]}
    out = []
    for rt in priv["resource_types"]:
        name = rt["resource_type"]
        if not name or name.replace("*", "") not in formats:
            continue
        out.append((name.replace("*", ""), formats[name.replace("*", "")], name.endswith("*")))
    return out


def arn_matches(rtype, fmt, resource):
    from parliament import is_arn_strictly_valid

    if resource == "*":
        return True
    if not isinstance(resource, str) or len(resource.split(":")) < 6:
        return False
    try:
        return is_arn_strictly_valid(rtype, fmt, resource)
    except Exception:
        return False


def resource_fits_statement(resource, actions):
    """Does resource match some resource type of some action of its statement?"""
    return any(arn_matches(rt, fmt, resource) for a in actions for rt, fmt, _ in action_resource_types(a))


def missing_account(resource):
    """An ARN with an empty account field where its service's matching resource type requires an account."""
    from parliament import iam_definition

    parts = resource.split(":") if isinstance(resource, str) else []
    if len(parts) < 6 or parts[0] != "arn" or parts[4] != "" or PUBLIC_SSM_PARAM.match(resource):
        return None
    svc = parts[2]
    with_account = ":".join(parts[:4] + ["*"] + parts[5:])
    needs, plain_ok = None, False
    for service in iam_definition:
        if service["prefix"] != svc:
            continue
        for r in service["resources"]:
            fmt = re.sub(r"\$\{.*?\}", "*", r["arn"])
            if arn_matches(r["resource"], fmt, resource):
                plain_ok = True
            elif r["arn"].split(":")[4:5] == ["${Account}"] and arn_matches(r["resource"], fmt, with_account):
                needs = r["resource"]
    return None if plain_ok or needs is None else needs


class Finding:
    def __init__(self, source, issue, severity, stmt_idx, sid, detail, location=""):
        self.source, self.issue, self.severity = source, issue, severity
        self.stmt_idx, self.sid, self.detail, self.location = stmt_idx, sid, detail, location
        self.accepted = None  # reason string when accepted

    def where(self):
        if self.stmt_idx is None:
            return "policy"
        return f"stmt {self.stmt_idx}" + (f" ({self.sid})" if self.sid else "")


def statement_actions(stmt):
    acts = []
    for a in as_list(stmt.get("Action")):
        acts.extend(expand(a) if isinstance(a, str) else [])
    return acts


def coverage_verdict(action, statements):
    """Reason string if action's resources are covered across the policy's Allow statements, else None."""
    types = action_resource_types(action)
    required = [(rt, fmt) for rt, fmt, req in types if req]
    if not required:
        return None
    union, holders = [], []
    for i, stmt in enumerate(statements):
        if stmt.get("Effect") != "Allow" or "Action" not in stmt or "NotResource" in stmt:
            continue
        acts = statement_actions(stmt)
        if action not in acts:
            continue
        holders.append(i)
        for r in as_list(stmt.get("Resource")):
            if r == "*" or any(arn_matches(rt, fmt, r) for rt, fmt, _ in types):
                union.append(r)
            elif len(acts) > 1 and resource_fits_statement(r, [a for a in acts if a != action]):
                continue  # a resource of another action of that statement: not this action's concern
            else:
                return None  # a resource that can match no resource type of the action
    if len(holders) < 2:
        return None  # not split: a real mismatch
    for rt, fmt in required:
        if not any(arn_matches(rt, fmt, r) for r in union):
            return None
    return (f"accepted: {action} split across statements, covered "
            f"(stmts {', '.join(map(str, holders))} together give {', '.join(rt for rt, _ in required)})")


def public_ssm_verdict(item, stmt):
    action, fmt = item.get("action", ""), item.get("required_format", "")
    if not action.startswith("ssm:") or ":parameter/" not in fmt:
        return None
    unmatched = [r for r in as_list(stmt.get("Resource")) if not arn_matches("parameter", fmt, r)]
    if unmatched and all(isinstance(r, str) and PUBLIC_SSM_PARAM.match(r) for r in unmatched):
        return (f"accepted: {action} on AWS public SSM parameter(s) {', '.join(unmatched)}: public parameters "
                f"have no account in their ARN, which parliament's parameter format requires")
    return None


def audit_document(label, doc, community):
    """Run parliament and this script's checks on one rendered document; return (statement count, findings)."""
    import parliament

    policy = parliament.analyze_policy_string(
        json.dumps(doc), filepath=label, ignore_private_auditors=True, include_community_auditors=community
    )
    statements = as_list(doc.get("Statement")) if isinstance(doc, dict) else []
    findings = []

    def convert(f, idx):
        try:
            parliament.enhance_finding(f)
        except Exception:  # an issue missing from parliament's config: still a finding
            f.severity = "UNKNOWN"
        sid = statements[idx].get("Sid") if idx is not None and idx < len(statements) else None
        loc = f.location.get("string", "") if isinstance(f.location, dict) else ""
        return Finding("parliament", f.issue, f.severity, idx, sid, f.detail, loc)

    for f in policy._findings:
        findings.append(convert(f, None))
    for idx, stmt in enumerate(policy.statements):
        for f in stmt.findings:
            findings.append(convert(f, idx))

    # This script's own checks.
    for idx, stmt in enumerate(statements):
        if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow" or "Action" not in stmt:
            continue
        acts = statement_actions(stmt)
        for r in as_list(stmt.get("Resource")):
            if not isinstance(r, str) or r == "*":
                continue
            acct_type = missing_account(r)
            if acct_type:
                findings.append(Finding("audit", "ARN_MISSING_ACCOUNT", "HIGH", idx, stmt.get("Sid"),
                                        f"{r}: a {r.split(':')[2]} {acct_type} ARN needs the account id", r))
            has_types = any(action_resource_types(a) for a in acts)
            if acts and has_types and not resource_fits_statement(r, acts) and not PUBLIC_SSM_PARAM.match(r):
                findings.append(Finding("audit", "RESOURCE_MATCHES_NO_TYPE", "HIGH", idx, stmt.get("Sid"),
                                        f"{r} matches no resource type of {', '.join(sorted(set(acts)))}", r))

    # Accept the documented false positives; leave everything else failing.
    for f in findings:
        if f.source != "parliament" or f.issue != "RESOURCE_MISMATCH" or f.stmt_idx is None:
            continue
        stmt = statements[f.stmt_idx]
        reasons = []
        for item in as_list(f.detail):
            reason = public_ssm_verdict(item, stmt) or coverage_verdict(item.get("action", ""), statements)
            if reason is None:
                reasons = None
                break
            if reason not in reasons:
                reasons.append(reason)
        if reasons:
            f.accepted = "; ".join(reasons)
    return len(statements), findings


# ------------------------------------------------------------------------------------------------------------
# checkov


def run_checkov(path):
    """(failed checks, number of skipped checks, error or None)."""
    exe = Path(sys.executable).with_name("checkov")
    # Run from the template's folder with its bare name: checkov's parser puts the path it was given into
    # every mapping as __file__, and CKV_AWS_45 (secrets in Lambda environment) then flags a path of exactly
    # 40 characters as an AWS secret access key (/work/main/deploy/cloudformation/ethnode is one).
    path = Path(path).resolve()
    cmd = [str(exe) if exe.exists() else "checkov", "-f", path.name, "--framework", "cloudformation",
           "-o", "json", "--quiet"]
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
    try:
        proc = subprocess.run(cmd, env=env, cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], 0, f"checkov did not run: {e}"
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return [], 0, f"checkov printed no JSON (exit {proc.returncode}): {proc.stdout[:300]!r}"
    reports = data if isinstance(data, list) else [data]
    failed, skipped, errors = [], 0, []
    for rep in reports:
        results = rep.get("results") or {}
        failed += results.get("failed_checks") or []
        skipped += (rep.get("summary") or {}).get("skipped") or 0
        errors += results.get("parsing_errors") or []
        if (rep.get("summary") or {}).get("parsing_errors"):
            errors.append(f"{rep['summary']['parsing_errors']} parsing error(s)")
    if not any((r.get("summary") or r).get("resource_count") for r in reports):
        errors.append("checkov scanned no resources")
    return failed, skipped, "; ".join(map(str, errors)) or None


# ------------------------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("template", nargs="?", default=str(DEFAULT_TEMPLATE))
    ap.add_argument("--no-checkov", action="store_true", help="skip the checkov scan")
    ap.add_argument("--community-auditors", action="store_true",
                    help="also run parliament's community auditors (privilege escalation, sensitive access...)")
    ap.add_argument("--show-rendered", action="store_true", help="print each rendered policy document")
    args = ap.parse_args(argv)

    path = Path(args.template)
    try:
        template = load_template(path)
    except Exception as e:  # cfn-lint raises its own match/decode errors
        print(f"cannot load {path}: {e}", file=sys.stderr)
        return 2

    import parliament
    if args.community_auditors:  # their issues' severities live in an override file, as the CLI loads it
        parliament.override_config(str(Path(parliament.__file__).parent / "community_auditors" /
                                       "config_override.yaml"))
    print(f"template: {path}   (parliament {parliament.__version__}; placeholders: account {ACCOUNT}, "
          f"{REGION}, stack {STACK})")
    rows, failing, accepted_total = [], 0, 0
    print("\n== parliament ==")
    for label, kind, lid, node in find_policies(template):
        try:
            variants = render_variants(template, node)
        except (TemplateError, KeyError, IndexError, TypeError, ValueError) as e:
            print(f"FAIL {label}: cannot render: {e}")
            rows.append((label, kind, "-", 1, 0))
            failing += 1
            continue
        for vlabel, doc in variants:
            name = label + (f" [{vlabel}]" if vlabel else "")
            if not isinstance(doc, dict) or not doc:
                continue  # the whole document is AWS::NoValue in this variant
            if kind == "trust":
                # parliament needs a Resource: the role's own ARN is what a trust policy governs.
                role_arn = Renderer(template).arn_of(lid)
                doc = dict(doc, Statement=[dict(s, Resource=role_arn) if "Resource" not in s and
                                           "NotResource" not in s else s for s in as_list(doc.get("Statement"))])
            if args.show_rendered:
                print(f"--- {name}\n{json.dumps(doc, indent=1)}")
            n_stmts, findings = audit_document(name, doc, args.community_auditors)
            n_acc = sum(1 for f in findings if f.accepted)
            n_fail = len(findings) - n_acc
            rows.append((name, kind, n_stmts, len(findings), n_acc))
            failing += n_fail
            accepted_total += n_acc
            for f in findings:
                status = "ok  " if f.accepted else "FAIL"
                loc = f" at {f.location!r}" if f.location else ""
                print(f"{status} {name} {f.where()}: [{f.severity}] {f.source}:{f.issue}{loc} - "
                      f"{json.dumps(f.detail, default=str) if not isinstance(f.detail, str) else f.detail}")
                if f.accepted:
                    print(f"       {f.accepted}")
    if not rows:
        print("no IAM policy documents found")

    ck_failed = []
    ck_error = None
    if not args.no_checkov:
        print("\n== checkov ==")
        ck_failed, ck_skipped, ck_error = run_checkov(path)
        for c in ck_failed:
            lines = c.get("file_line_range") or []
            print(f"FAIL {c.get('check_id')} {c.get('resource')} (lines {'-'.join(map(str, lines))}): "
                  f"{c.get('check_name')}")
        if ck_skipped:  # --quiet leaves the skipped checks themselves out of the JSON
            print(f"{ck_skipped} check(s) skipped by the template's Metadata: checkov: skip: (fine)")
        if ck_error:
            print(f"FAIL checkov: {ck_error}")
        if not ck_failed and not ck_error:
            print("no failed checks")

    print("\n== summary ==")
    width = max([len(r[0]) for r in rows] + [6])
    print(f"{'policy':<{width}}  {'kind':<8} {'stmts':>5} {'findings':>8} {'accepted':>8}")
    for name, kind, n, nf, na in rows:
        print(f"{name:<{width}}  {kind:<8} {n!s:>5} {nf:>8} {na:>8}")
    ck_status = "skipped" if args.no_checkov else (f"{len(ck_failed)} failed" + (", error" if ck_error else ""))
    print(f"parliament: {failing} failing finding(s), {accepted_total} accepted; checkov: {ck_status}")
    ok = failing == 0 and not ck_failed and not ck_error
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
