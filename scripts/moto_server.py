"""moto_server for ethnode's tests, with two fixes to moto's CloudFormation emulation.

1. moto 5.2.x builds a stack's outputs and exports once, from the template the stack had when it was made. A
stack made by a CREATE change set starts with an empty template, and executing a change set never rebuilds
them, so stacks deployed through change sets (as `ethnode deploy` does, like the AWS console) show no
outputs and list no exports. Real CloudFormation does both. This wrapper rebuilds them after each change
set is executed.

2. DescribeStacks renders list parameters (List<AWS::EC2::Subnet::Id>) as Python lists ("['subnet-…']")
where CloudFormation returns "subnet-a,subnet-b"; passing such a value back (as `ethnode snapshot promote`
does, keeping every other parameter) then breaks the stack. Lists are joined with commas.

Otherwise this runs moto's own server unchanged: `python scripts/moto_server.py -H 127.0.0.1 -p PORT`.
"""

from moto.cloudformation import models
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

if __name__ == "__main__":
    main()
