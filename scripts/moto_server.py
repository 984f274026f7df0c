"""moto_server for ethnode's tests, with fixes to moto's CloudFormation and CloudWatch Logs emulation.

1. moto 5.2.x builds a stack's outputs and exports once, from the template the stack had when it was made. A
stack made by a CREATE change set starts with an empty template, and executing a change set never rebuilds
them, so stacks deployed through change sets (as `ethnode deploy` does, like the AWS console) show no
outputs and list no exports. Real CloudFormation does both. This wrapper rebuilds them after each change
set is executed.

2. DescribeStacks renders list parameters (List<AWS::EC2::Subnet::Id>) as Python lists ("['subnet-…']")
where CloudFormation returns "subnet-a,subnet-b"; passing such a value back (as `ethnode snapshot promote`
does, keeping every other parameter) then breaks the stack. Lists are joined with commas.

3. DescribeStacks shows NoEcho parameters ("****"); moto compared values with key names, so never masked them.

4. UsePreviousValue takes the previous value as given (or the old Default). moto's UpdateStack looked it up in
the create-time inputs (500 for a defaulted parameter), CreateChangeSet passed resolved values (a list made
ExecuteChangeSet fail with 500), and an executed change set left the old inputs as the "current" ones.

5. A resource that AWS refuses fails the stack (ROLLBACK_COMPLETE / UPDATE_ROLLBACK_COMPLETE with a
<OP>_FAILED resource event) instead of the call answering the resource's error and the stack staying IN_PROGRESS.

6. PutMetricFilter refuses what CloudWatch Logs refuses: dimensions unless the pattern is JSON or
space-delimited, dimension values that are not field selectors, DefaultValue with dimensions, more than 3
dimensions; a put replaces a filter of the same name. AWS::Logs::MetricFilter (skipped by moto) is supported.

7. CreateChangeSet without changes succeeds and the change set ends FAILED ("didn't contain changes"), as in
CloudFormation; moto answered ValidationError "No updates are to be performed." (UpdateStack's answer) once
previous values compared equal.

8. CompleteLifecycleAction (not implemented by moto: 500) completes a hook of the group for one of its
instances, whose LifecycleState then reads Terminating:Proceed in DescribeAutoScalingInstances; an unknown
hook or instance is a ValidationError, as in Auto Scaling.

9. Service Quotas knows the EBS storage quotas ethnode's preflight reads (moto knows only VPC's): AWS's
default values, and ListServiceQuotas (not implemented by moto) answers the same list, as for an account
that never changed them.

10. AWS::ElasticLoadBalancingV2::LoadBalancer takes its Type (network: a Network Load Balancer, whose
listeners speak TCP/TLS/UDP) and its LoadBalancerAttributes, as CloudFormation does; moto made every such
resource an Application Load Balancer (so a TCP listener was refused) and dropped its attributes.

Otherwise this runs moto's own server unchanged: `python scripts/moto_server.py -H 127.0.0.1 -p PORT`.
"""

import re

from moto.cloudformation import models, parsing
from moto.cloudformation.exceptions import ValidationError
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import ServiceException, _RESTError
from moto.logs import exceptions as logs_exceptions
from moto.logs import models as logs_models
from moto.server import main

_execute = models.CloudFormationBackend.execute_change_set


def _execute_and_publish_outputs(self, change_set_name, stack_name=None):
    _execute(self, change_set_name, stack_name)
    stack = self.describe_change_set(change_set_name).stack
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    for name in [n for n, e in self.exports.items() if e.exporting_stack_id == stack.stack_id]:
        self.exports.pop(name)
    # Only the exports of outputs whose condition holds (moto's own list ignores output conditions).
    shown = {o["ExportName"] for o in stack.outputs or [] if o.get("ExportName")}
    for export in stack.exports:
        if export.name in shown:
            self.exports[export.name] = export


models.CloudFormationBackend.execute_change_set = _execute_and_publish_outputs

_parameter_list = models.Stack.parameter_list.fget


def _parameter_list_as_cloudformation_renders_it(self):
    return [
        {**p, "ParameterValue": ",".join(p["ParameterValue"])}
        if isinstance(p["ParameterValue"], list)
        else p
        for p in _parameter_list(self)
    ]


models.Stack.parameter_list = property(_parameter_list_as_cloudformation_renders_it)

# --- 3. NoEcho parameters render as "****" (moto compares values with key names, so never masks) -------------
_parameter_list_joined = models.Stack.parameter_list.fget


def _no_echo_keys(stack):
    declared = (stack.resource_map._template or {}).get("Parameters") or {}
    return {k for k, p in declared.items() if str((p or {}).get("NoEcho", "")).lower() == "true"}


def _parameter_list_masked(self):
    hidden = _no_echo_keys(self)
    return [{**p, "ParameterValue": "****"} if p["ParameterKey"] in hidden else p for p in _parameter_list_joined(self)]


models.Stack.parameter_list = property(_parameter_list_masked)


# --- 4. UsePreviousValue takes the stack's previous value, as the string that was given (or the old Default) --
def _as_parameter_string(value):
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _previous_values(stack):
    rm = stack.resource_map
    declared = (rm._template or {}).get("Parameters") or {}
    values = {k: p.get("Default") for k, p in declared.items() if "Default" in (p or {})}
    values.update({k: v for k, v in (rm.input_parameters or {}).items() if k in declared})
    return {k: _as_parameter_string(v) for k, v in values.items() if v is not None}


# CreateChangeSet (responses.create_change_set) reads stack.stack_parameters; moto gave resolved values (lists,
# ints, SSM values), and executing the change set then fails with 500 ('list' object has no attribute 'split').
models.Stack.stack_parameters = property(_previous_values)
_resolve_update_parameters = models.CloudFormationBackend._resolve_update_parameters


def _resolve_update_parameters_from_previous(self, instance, incoming_params):
    if not isinstance(instance, models.Stack):  # stack sets keep moto's behaviour
        return _resolve_update_parameters(self, instance, incoming_params)
    previous, resolved = _previous_values(instance), {}
    for p in incoming_params:
        key = p["ParameterKey"]
        if p.get("UsePreviousValue"):  # moto used instance.parameters[key]: KeyError (500) for a defaulted key
            if key not in previous:
                raise ValidationError(message=f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template")
            resolved[key] = previous[key]
        elif "ParameterValue" in p:
            resolved[key] = p["ParameterValue"]
    return resolved


models.CloudFormationBackend._resolve_update_parameters = _resolve_update_parameters_from_previous

# --- 5. A resource that AWS refuses fails the stack (moto: CreateStack answers the resource's error and the
# stack stays CREATE_IN_PROGRESS; ExecuteChangeSet likewise, stack left REVIEW_IN_PROGRESS) ------------------
def _noting_failed_resource(parse):
    def wrapper(logical_id, resource_json, *args, **kwargs):
        try:
            return parse(logical_id, resource_json, *args, **kwargs)
        except (_RESTError, ServiceException) as e:
            if not hasattr(e, "cfn_failed_resource"):  # the innermost resource is the one that failed
                e.cfn_failed_resource = (logical_id, resource_json.get("Type"))
            raise

    return wrapper


parsing.parse_and_create_resource = _noting_failed_resource(parsing.parse_and_create_resource)
parsing.parse_and_update_resource = _noting_failed_resource(parsing.parse_and_update_resource)


def _fail_stack(backend, stack, e, operation, undo):
    """Resource event <operation>_FAILED, then (UPDATE_)ROLLBACK_IN_PROGRESS, undo(), (UPDATE_)ROLLBACK_COMPLETE."""
    logical_id, rtype = getattr(e, "cfn_failed_resource", (stack.name, "AWS::CloudFormation::Stack"))
    text = getattr(e, "message", None) or getattr(e, "description", None) or str(e)
    stack.events.append(models.Event(stack.stack_id, stack.name, logical_id, "", rtype, f"{operation}_FAILED", text, None))
    status = "ROLLBACK_COMPLETE" if operation == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
    reason = f"The following resource(s) failed to {operation.lower()}: [{logical_id}]. Rollback requested by user."
    stack._add_stack_event(status.replace("COMPLETE", "IN_PROGRESS"), resource_status_reason=reason)
    try:
        undo()
    except Exception:  # best effort, like moto's own deletes
        pass
    if operation == "CREATE":  # nothing is left: no resources (moto would lazily re-create them), outputs, exports
        stack.resource_map._resource_json_map = {}
        stack.output_map = parsing.OutputMap(stack.resource_map, {}, stack.stack_id)
        for name in [n for n, x in backend.exports.items() if x.exporting_stack_id == stack.stack_id]:
            backend.exports.pop(name)
    else:
        stack.output_map = stack._create_output_map()
    stack.status, stack.status_reason = status, reason
    stack._add_stack_event(status)


_create_stack = models.CloudFormationBackend.create_stack


def _create_stack_failing_like_cloudformation(self, name, *args, **kwargs):
    try:
        return _create_stack(self, name, *args, **kwargs)
    except (_RESTError, ServiceException) as e:
        stack = next((s for s in self.stacks.values() if s.name == name), None)
        if stack is None or not hasattr(e, "cfn_failed_resource"):  # not a resource's failure: an API error, as before
            raise
        _fail_stack(self, stack, e, "CREATE", stack.resource_map.delete)
        return stack


models.CloudFormationBackend.create_stack = _create_stack_failing_like_cloudformation
_execute_with_outputs = models.CloudFormationBackend.execute_change_set


def _execute_failing_like_cloudformation(self, change_set_name, stack_name=None):
    change_set = self.describe_change_set(change_set_name)
    stack = change_set.stack
    before_template, before_params = stack.resource_map._template, dict(stack.resource_map.input_parameters or {})
    try:
        _execute_with_outputs(self, change_set_name, stack_name)
    except (_RESTError, ServiceException) as e:
        if not hasattr(e, "cfn_failed_resource"):
            raise
        change_set.execution_status = "EXECUTE_FAILED"
        if change_set.change_set_type == "CREATE":
            stack.template = change_set.template
            _fail_stack(self, stack, e, "CREATE", stack.resource_map.delete)
        else:
            _fail_stack(self, stack, e, "UPDATE", lambda: stack.resource_map.update(before_template, before_params))
        return
    stack.parameters = dict(change_set.parameters)  # moto kept the first ones: a later change set back to them was "no changes"


models.CloudFormationBackend.execute_change_set = _execute_failing_like_cloudformation
_update_stack = models.CloudFormationBackend.update_stack


def _update_stack_failing_like_cloudformation(self, name, template, *args, **kwargs):
    stack = self.get_stack(name)
    before = stack.template, stack.resource_map._template, dict(stack.resource_map.input_parameters or {})
    try:
        return _update_stack(self, name, template, *args, **kwargs)
    except (_RESTError, ServiceException) as e:
        if not hasattr(e, "cfn_failed_resource"):
            raise
        stack.template = before[0]
        stack._parse_template()
        _fail_stack(self, stack, e, "UPDATE", lambda: stack.resource_map.update(before[1], before[2]))
        return stack


models.CloudFormationBackend.update_stack = _update_stack_failing_like_cloudformation


# --- 6. CloudWatch Logs metric filters: refuse dimensions CloudWatch Logs refuses; AWS::Logs::MetricFilter -------
_SPACE_FIELD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


def _check_metric_transformations(filter_pattern, transformations):
    pattern = (filter_pattern or "").strip()
    for t in transformations or []:
        dimensions = t.get("dimensions") or {}
        if not dimensions:
            continue
        if t.get("defaultValue") is not None:
            raise logs_exceptions.InvalidParameterException("Invalid metric transformation: defaultValue cannot be specified together with dimensions")
        if len(dimensions) > 3:
            raise logs_exceptions.InvalidParameterException("Invalid metric transformation: at most 3 dimensions are allowed")
        if pattern.startswith("{") and pattern.endswith("}"):
            kind, ok = "JSON", lambda v: re.fullmatch(r"\$\.[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+|\[\d+\])*", v)
        elif pattern.startswith("[") and pattern.endswith("]"):
            fields = {m.group(1) for m in map(_SPACE_FIELD.match, pattern[1:-1].split(",")) if m}
            kind, ok = "space-delimited", lambda v: re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", v) and v[1:] in fields
        else:
            raise logs_exceptions.InvalidParameterException("Invalid metric transformation: dimensions can only be used with a JSON or space-delimited filter pattern")
        for key, value in dimensions.items():
            if not ok(str(value)):
                raise logs_exceptions.InvalidParameterException(f"Invalid metric transformation: dimension {key} has value {value!r}, which is not a field selector of the {kind} filter pattern")


_put_metric_filter = logs_models.LogsBackend.put_metric_filter


def _put_metric_filter_checked(self, filter_name, filter_pattern, log_group_name, metric_transformations):
    _check_metric_transformations(filter_pattern, metric_transformations)
    self.filters.delete_filter(filter_name, log_group_name)  # a put replaces the filter of that name (moto appended)
    _put_metric_filter(self, filter_name, filter_pattern, log_group_name, metric_transformations)


logs_models.LogsBackend.put_metric_filter = _put_metric_filter_checked


class MetricFilter(CloudFormationModel):  # moto 5.2 has no AWS::Logs::MetricFilter: it skipped it with a warning
    __module__ = "moto.logs.models"  # moto's model registry keys models by the service in their module name
    def __init__(self, name, log_group_name, account_id, region_name):
        self.name, self.log_group_name, self.account_id, self.region_name = name, log_group_name, account_id, region_name

    @property
    def physical_resource_id(self):
        return self.name

    @staticmethod
    def cloudformation_type():
        return "AWS::Logs::MetricFilter"

    @staticmethod
    def cloudformation_name_type():
        return "FilterName"

    @classmethod
    def has_cfn_attr(cls, attr):
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        keys = {"MetricName": "metricName", "MetricNamespace": "metricNamespace", "MetricValue": "metricValue", "DefaultValue": "defaultValue", "Unit": "unit"}
        transformations = []
        for t in props.get("MetricTransformations", []):
            api = {keys[k]: v for k, v in t.items() if k in keys}
            if t.get("Dimensions"):
                api["dimensions"] = {d["Key"]: d["Value"] for d in t["Dimensions"]}
            transformations.append(api)
        backend = logs_models.logs_backends[account_id][region_name]
        backend.put_metric_filter(resource_name, props.get("FilterPattern", ""), props["LogGroupName"], transformations)
        return cls(resource_name, props["LogGroupName"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        name = cloudformation_json["Properties"].get("FilterName") or original_resource.name  # updates keep the name
        new = cls.create_from_cloudformation_json(name, cloudformation_json, account_id, region_name)
        if (new.name, new.log_group_name) != (original_resource.name, original_resource.log_group_name):
            original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id, region_name):
        logs_models.logs_backends[account_id][region_name].delete_metric_filter(self.name, self.log_group_name)


for _cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
    _cached.cache_clear()


from moto.cloudformation import responses as _cfn_responses

_validate_different_update = _cfn_responses.CloudFormationResponse._validate_different_update


def _validate_unless_change_set(self, *args, **kwargs):
    if self._get_action() == "CreateChangeSet":
        return None
    return _validate_different_update(self, *args, **kwargs)


_cfn_responses.CloudFormationResponse._validate_different_update = _validate_unless_change_set

from moto.autoscaling import responses as _asg_responses
from moto.autoscaling.exceptions import ValidationError as _AsgValidationError
from moto.core.responses import EmptyResult as _EmptyResult


def _complete_lifecycle_action(self):
    backend = self.autoscaling_backend
    group = self._get_param("AutoScalingGroupName")
    hook = self._get_param("LifecycleHookName")
    instance = self._get_param("InstanceId")
    if f"{group}_{hook}" not in backend.lifecycle_hooks:
        raise _AsgValidationError(f"No Lifecycle Hook found with name {hook} for group {group}")
    asg = backend.autoscaling_groups.get(group)
    state = next((s for s in (asg.instance_states if asg else []) if s.instance.id == instance), None)
    if state is None:
        raise _AsgValidationError(f"No active Lifecycle Action found with instance ID {instance}")
    state.lifecycle_state = "Terminating:Proceed"
    return _EmptyResult()


_asg_responses.AutoScalingResponse.complete_lifecycle_action = _complete_lifecycle_action

from moto.servicequotas import models as _sq_models
from moto.servicequotas import responses as _sq_responses

_EBS_DEFAULT_QUOTAS = [
    {"ServiceCode": "ebs", "ServiceName": "Amazon Elastic Block Store (Amazon EBS)", "QuotaCode": code,
     "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True, "GlobalQuota": False}
    for code, name, value in [
        ("L-7A658B76", "Storage for General Purpose SSD (gp3) volumes, in TiB", 50.0),
        ("L-09BD8365", "Storage for Provisioned IOPS SSD (io2) volumes, in TiB", 20.0),
    ]
]
_list_defaults = _sq_models.ServiceQuotasBackend.list_aws_default_service_quotas


def _list_defaults_with_ebs(self, service_code):
    if service_code == "ebs":
        return _EBS_DEFAULT_QUOTAS
    return _list_defaults(self, service_code)


_sq_models.ServiceQuotasBackend.list_aws_default_service_quotas = _list_defaults_with_ebs


def _list_service_quotas(self):
    import json as _json
    code = _json.loads(self.body)["ServiceCode"]
    return _json.dumps({"Quotas": self.backend.list_aws_default_service_quotas(code)})


_sq_responses.ServiceQuotasResponse.list_service_quotas = _list_service_quotas

# --- 10. Load balancers made by CloudFormation keep their Type and attributes ---------------------------------
from moto.elbv2 import models as _elbv2_models


def _load_balancer_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    backend = _elbv2_models.elbv2_backends[account_id][region_name]
    balancer = backend.create_load_balancer(
        resource_name,
        properties.get("SecurityGroups"),
        properties.get("Subnets"),
        scheme=properties.get("Scheme", "internet-facing"),
        loadbalancer_type=properties.get("Type", "application"),
    )
    attributes = {a["Key"]: a["Value"] for a in properties.get("LoadBalancerAttributes", [])}
    if attributes:
        backend.modify_load_balancer_attributes(balancer.arn, attributes)
    return balancer


_elbv2_models.FakeLoadBalancer.create_from_cloudformation_json = classmethod(_load_balancer_from_cloudformation)

if __name__ == "__main__":
    main()
