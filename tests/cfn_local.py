#!/usr/bin/env python3
"""infra/template.yaml, read as CloudFormation and Step Functions would, for local tests.

    cfn_local.py env TEMPLATE < config.json
        Each Lambda function's environment, as the stack would give it: Globals merged with the
        function's own variables, every intrinsic function resolved with the config's parameter
        values, resource references and attributes, AWS::NoValue dropped. Prints
        {"<LogicalId>": {"binary": <BuildProperties.Binary>, "env": {...}}, ...}.

    cfn_local.py run-state-machine TEMPLATE LOGICAL_ID INVOKE_URL INPUT_JSON < config.json
        Runs the state machine's definition (its JSONata expressions evaluated by jsonata-python)
        with each Lambda invoke Task sent to INVOKE_URL/<function>/invocations, the Runtime API
        emulator's invoke endpoint (`cargo lambda watch`). Prints {"output": ..., "invocations":
        [{"state", "function", "payload", "answer"}, ...]}.

config.json: {"parameters": {...}, "refs": {"LogicalId": value, "Fn.Alias": value},
"attrs": {"LogicalId.Attr": value}, "pseudo": {"AWS::Region": ..., ...}}. A reference the
config does not give is an error naming it, so a test cannot silently pass on a wiring it did
not provide. Only what the template uses is implemented; anything else is an error.
"""

import json
import re
import sys
import urllib.request

from cfnlint.decode import decode_str

NO_VALUE = object()


class Resolver:
    def __init__(self, template, config):
        self.t = template
        self.params = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in config.get("parameters", {}):
                self.params[name] = config["parameters"][name]
            elif "Default" in spec:
                self.params[name] = spec["Default"]
            else:
                raise SystemExit(f"parameter {name} has no default and the config gives none")
        for name in config.get("parameters", {}):
            if name not in self.params:
                raise SystemExit(f"the config sets parameter {name}, which the template does not have")
        self.refs = config.get("refs", {})
        self.attrs = config.get("attrs", {})
        self.pseudo = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
                       "AWS::StackName": "larder", "AWS::URLSuffix": "amazonaws.com", **config.get("pseudo", {})}
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.t["Conditions"][name]))
        return self.conditions[name]

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            v = self.params[name]
            return v if not isinstance(v, (int, float)) else str(v)
        if name in self.refs:
            return self.refs[name]
        raise SystemExit(f"Ref {name}: not a parameter, and the config gives no value for the resource")

    def getatt(self, logical, attr):
        key = f"{logical}.{attr}"
        if key not in self.attrs:
            raise SystemExit(f"Fn::GetAtt {key}: the config gives no value for it")
        return self.attrs[key]

    def sub(self, text, extra):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name and name.split(".", 1)[0] not in self.params:
                logical, attr = name.split(".", 1)
                if f"{logical}.{attr}" in self.refs:
                    return str(self.refs[f"{logical}.{attr}"])
                return str(self.getatt(logical, attr))
            return str(self.ref(name))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node):
        if isinstance(node, list):
            out = [self.value(v) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if "." in arg and arg in self.refs:
                    return self.refs[arg]
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical, attr)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    extra = {k: self.value(v) for k, v in arg[1].items()}
                    return self.sub(arg[0], extra)
                return self.sub(arg, {})
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = (self.value(v) for v in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(v) for v in arg)
            if key == "Fn::Or":
                return any(self.value(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            if key.startswith("Fn::"):
                raise SystemExit(f"{key} is not implemented here")
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}


def load(path, config):
    template, matches = decode_str(open(path).read())
    if matches:
        raise SystemExit(f"{path} does not parse: {matches}")
    return Resolver(template, config)


def functions_env(r):
    globals_env = r.t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out = {}
    for logical, res in r.t["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        if "Condition" in res and not r.condition(res["Condition"]):
            continue
        own = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
        env = r.value({**globals_env, **own})
        out[logical] = {"binary": res.get("Metadata", {}).get("BuildProperties", {}).get("Binary"),
                        "env": {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}}
    return out


# ---- Step Functions (the JSONata subset infra/template.yaml uses) ---------------------------

def jsonata_eval(expr, states, variables):
    import jsonata
    e = jsonata.Jsonata(expr)
    e.assign("states", states)
    for k, v in variables.items():
        e.assign(k, v)
    return e.evaluate(None)


def template_value(node, states, variables):
    """A JSONata template: strings "{% expr %}" are evaluated, the rest kept (recursively)."""
    if isinstance(node, str):
        m = re.fullmatch(r"\s*\{%(.*)%\}\s*", node, re.S)
        return jsonata_eval(m.group(1), states, variables) if m else node
    if isinstance(node, list):
        return [template_value(v, states, variables) for v in node]
    if isinstance(node, dict):
        return {k: template_value(v, states, variables) for k, v in node.items()}
    return node


class Machine:
    def __init__(self, definition, substitutions, invoke_url, calls):
        self.subs = substitutions
        self.invoke_url = invoke_url.rstrip("/")
        self.calls = calls
        self.definition = definition

    def substitute(self, node):
        if isinstance(node, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.subs[m.group(1)]), node)
        if isinstance(node, list):
            return [self.substitute(v) for v in node]
        if isinstance(node, dict):
            return {k: self.substitute(v) for k, v in node.items()}
        return node

    def invoke(self, state, function, payload):
        req = urllib.request.Request(f"{self.invoke_url}/{function}/invocations", data=json.dumps(payload).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=600) as resp:
            body = resp.read()
            answer = json.loads(body) if body else None
            if resp.headers.get("X-Amz-Function-Error") or resp.headers.get("x-amz-function-error"):
                raise SystemExit(f"state {state}: {function} failed: {answer}")
        self.calls.append({"state": state, "function": function, "payload": payload, "answer": answer})
        return answer

    def run(self, machine, input_, context, variables):
        states = self.substitute(machine["States"])
        name = machine["StartAt"]
        while True:
            s = states[name]
            st = {"input": input_, "context": context}
            kind = s["Type"]
            if kind == "Task":
                if s["Resource"] != "arn:aws:states:::lambda:invoke":
                    raise SystemExit(f"state {name}: resource {s['Resource']} is not implemented here")
                args = template_value(s["Arguments"], st, variables)
                result = {"Payload": self.invoke(name, args["FunctionName"], args["Payload"]), "StatusCode": 200}
            elif kind == "Map":
                items = template_value(s["Items"], st, variables)
                processor = s["ItemProcessor"]
                # A distributed map's items run as child executions, which see none of this
                # execution's variables; an inline map's see them.
                distributed = processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
                result = [self.run(processor, item, context, {} if distributed else dict(variables)) for item in items]
            elif kind == "Choice":
                nxt = s.get("Default")
                for c in s["Choices"]:
                    if template_value(c["Condition"], st, variables):
                        nxt = c["Next"]
                        break
                if nxt is None:
                    raise SystemExit(f"state {name}: no choice matched and there is no Default")
                name = nxt
                continue
            elif kind == "Fail":
                raise SystemExit(f"state {name} failed: {s.get('Error')}: {s.get('Cause')}")
            elif kind == "Pass":
                result = input_
            else:
                raise SystemExit(f"state {name}: type {kind} is not implemented here")
            st = {**st, "result": result}
            for k, v in (s.get("Assign") or {}).items():
                variables[k] = template_value(v, st, variables)
            output = template_value(s["Output"], st, variables) if "Output" in s else result
            if s.get("End"):
                return output
            input_ = output
            name = s["Next"]


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    config = json.load(sys.stdin)
    r = load(path, config)
    if cmd == "env":
        print(json.dumps(functions_env(r), indent=1, sort_keys=True))
    elif cmd == "run-state-machine":
        logical, invoke_url, input_json = sys.argv[3], sys.argv[4], sys.argv[5]
        props = r.t["Resources"][logical]["Properties"]
        subs = r.value(props.get("DefinitionSubstitutions", {}))
        definition = props["Definition"]
        if definition.get("QueryLanguage") != "JSONata":
            raise SystemExit("only JSONata state machines are implemented here")
        calls = []
        context = {"Execution": {"StartTime": "2026-01-01T00:00:00.000Z"}}
        output = Machine(definition, subs, invoke_url, calls).run(definition, json.loads(input_json), context, {})
        print(json.dumps({"output": output, "invocations": calls}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
