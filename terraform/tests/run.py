#!/usr/bin/env python3
"""Offline checks of terraform/: everything that can run without a cloud account or a network.

    .venv-tf/bin/python terraform/tests/run.py [--out DIR] [--tern PATH] [--checkov PATH]

1. `terraform fmt -check` over terraform/.
2. `terraform init` + `validate` + `test` of the provider-free modules (topology, worker-config)
   and `init` + `validate` of the render harness (terraform/tests/render).
3. The error message of every validation in modules/topology/tests/validations.tftest.hcl: each
   failing run is planned again on its own and its message must name the culprit.
4. The examples' topology: terraform/tests/render is applied with each example's
   regions.auto.tfvars, and each region's tern.toml is written to DIR/<example>/<region>.toml
   (for `tern check --offline`, run here when --tern is given and by tests/it/terraform.rs),
   and all of the harness's outputs (flows, workers, secret references, probe paths) to
   DIR/<example>.json.
   add-region must be three-region plus one region, and add exactly that region's flows.
5. Structure of the cloud modules and examples, parsed with python-hcl2: standard files, every
   variable typed and described, pinned versions, the same inputs and outputs on every cloud,
   READMEs that list every input and output, modules consumed by relative path.
6. Probes and secrets: every cloud restarts workers on liveness (/livez) and routes on readiness
   (/readyz), routes Tern serves, and nothing probes /healthz; each cloud's workers may read
   exactly the secrets they name (Azure: a role assignment per secret, not the vault).
7. checkov (offline, --skip-download) over terraform/ with Tern's own policies
   (terraform/tests/checkov) and over docker/Dockerfile: any failed check or parse error fails.

Cloud modules cannot be planned here (providers cannot be downloaded): steps 5 to 7 cover them.
Exits non-zero when anything fails, after running every step it can.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TF_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(TF_ROOT)
TERRAFORM = [sys.executable, os.path.join(TF_ROOT, "tools", "terraform.py")]
CLOUDS = ["aws", "gcp", "azure"]
CLOUD_MODULES = [f"{c}-region" for c in CLOUDS]
PROVIDER_FREE = ["topology", "worker-config"]
EXAMPLES = ["three-region", "add-region"]

# What the message of each failing run in validations.tftest.hcl must contain: the rule and
# the offending names, so an operator knows what to fix without reading the module.
EXPECTED_MESSAGES = {
    "flow_naming_an_unknown_region": ["unknown region in us-east->ap-south", "defined regions: eu-nl, eu-west, us-east"],
    "flow_from_a_region_to_itself": ["source and target must differ", "eu-west->eu-west"],
    "two_flows_with_the_same_source_and_target": ["one flow per source and target", "us-east->eu-west"],
    "identity_naming_both_ways_would_loop": ["identity naming would loop", "eu-west->us-east", "us-east->eu-west", 'naming = "prefix"'],
    "identity_naming_around_three_regions_would_loop": ["identity naming would loop", "eu-nl, eu-west, us-east", "eu-nl->us-east"],
    "identity_naming_in_a_full_mesh_would_loop": ["identity naming would loop"],
    "same_cloud_region_listed_twice": ["each cloud region may appear once", "aws us-east-1 (us-east, us-east-2)"],
    "same_cluster_under_two_aliases": ["the same cluster is listed twice", "eu-west and us-east", "use-2:9092"],
    "alias_with_a_dot": ["no '.'", "us.east"],
    "unknown_cloud": ['cloud must be "aws", "gcp" or "azure"', 'us-east ("ibm")'],
    "bootstrap_without_port": ["host:port", "use-1.example"],
    "inline_secret_value_instead_of_a_reference": ["never its value", "us-east.credentials.sasl_password"],
    "primary_naming_an_unknown_region": ["primary must name another region", 'us-west (primary = "us-east"'],
    "full_mesh_with_a_passive_region": ['every region\'s role must be "active"', "us-west (passive)"],
    "hub_and_spoke_with_two_hubs": ["exactly one region with role \"hub\"", "hubs: [eu-west, us-east]"],
    "active_passive_without_a_primary": ["a primary naming an active region", "us-west (role passive, primary unset)"],
    "unknown_pattern": ['got "ring"'],
    "unknown_naming": ['naming must be "prefix" or "identity"', 'us-east->eu-west ("suffix")'],
    "flow_with_no_topics": ["topics is empty", "us-east->eu-west"],
    "checkpoint_interval_that_is_not_a_duration": ["checkpoint_interval must be a duration", '"5 seconds"'],
    "privileged_web_port": ["unprivileged port", "got 80"],
    "sasl_without_a_password_secret": ["credentials.sasl_password", "refused: us-east"],
}


class Checks:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failures.append(what + (f"\n    {detail}" if detail else ""))
            print(f"FAIL {what}" + (f"\n    {detail}" if detail else ""), flush=True)


def terraform(args, cwd):
    p = subprocess.run(TERRAFORM + args, cwd=cwd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def step(title):
    print(f"== {title}", flush=True)


def unquote(v):
    """python-hcl2 keeps HCL's quotes and `${}` wrappers; turn its output into plain JSON values."""
    if isinstance(v, dict):
        # Keys such as __is_block__ and __inline_comments__ are the parser's annotations.
        return {unquote(k): unquote(x) for k, x in v.items() if not k.startswith("__")}
    if isinstance(v, list):
        return [unquote(x) for x in v]
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return json.loads(v, strict=False)
        except json.JSONDecodeError:
            return v[1:-1]
    return v


def load_hcl(path):
    import hcl2

    with open(path) as f:
        return hcl2.load(f)


def blocks(parsed, kind):
    """{label: body} of the top-level blocks of one kind (variable, output, module, run)."""
    out = {}
    for entry in parsed.get(kind, []):
        for label, body in entry.items():
            out[unquote(label)] = body
    return out


def fmt(c):
    step("terraform fmt -check")
    rc, out, err = terraform(["fmt", "-check", "-recursive", "-diff", TF_ROOT], REPO)
    c.check(rc == 0, "terraform fmt -check: files need formatting (run terraform fmt -recursive terraform)", out + err)


def provider_free(c):
    dirs = [os.path.join(TF_ROOT, "modules", m) for m in PROVIDER_FREE] + [os.path.join(HERE, "render")]
    for d in dirs:
        name = os.path.relpath(d, REPO)
        step(f"terraform init/validate {name}")
        rc, out, err = terraform(["init", "-input=false", "-no-color"], d)
        c.check(rc == 0, f"terraform init {name}", out + err)
        rc, out, err = terraform(["validate", "-no-color"], d)
        c.check(rc == 0, f"terraform validate {name}", out + err)
        if os.path.isdir(os.path.join(d, "tests")):
            step(f"terraform test {name}")
            rc, out, err = terraform(["test", "-no-color"], d)
            print(out.strip().splitlines()[-1] if out.strip() else "", flush=True)
            c.check(rc == 0, f"terraform test {name}", out + err)
            counts = re.search(r"(\d+) passed, (\d+) failed", out)
            c.check(counts is not None and int(counts.group(1)) > 0 and counts.group(2) == "0",
                    f"terraform test {name} ran no passing test", out[-500:])


def validation_messages(c):
    step("validation messages of modules/topology")
    module = os.path.join(TF_ROOT, "modules", "topology")
    parsed = load_hcl(os.path.join(module, "tests", "validations.tftest.hcl"))
    file_vars = {}
    for v in parsed.get("variables", []):
        file_vars.update(unquote(v))
    runs = blocks(parsed, "run")
    failing = {name for name, body in runs.items() if body.get("expect_failures")}
    c.check(failing == set(EXPECTED_MESSAGES), "every failing run of validations.tftest.hcl has expected messages in run.py and vice versa",
            f"only in the tftest: {sorted(failing - set(EXPECTED_MESSAGES))}; only in run.py: {sorted(set(EXPECTED_MESSAGES) - failing)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(failing & set(EXPECTED_MESSAGES)):
            values = dict(file_vars)
            for v in runs[name].get("variables", []):
                values.update(unquote(v))
            var_file = os.path.join(tmp, f"{name}.tfvars.json")
            with open(var_file, "w") as f:
                json.dump(values, f)
            rc, out, err = terraform(["plan", "-input=false", "-no-color", "-lock=false", f"-var-file={var_file}"], module)
            # Terraform wraps long messages over several lines.
            text = re.sub(r"\s*\n[│ ]*", " ", err + out)
            missing = [m for m in EXPECTED_MESSAGES[name] if m not in text]
            c.check(rc != 0 and not missing, f"plan of {name} fails with a message naming {missing or EXPECTED_MESSAGES[name]}", text[-1500:])


def render_examples(c, out_dir):
    step("render the examples' topology")
    harness = os.path.join(HERE, "render")
    rendered = {}
    for example in EXAMPLES:
        tfvars = os.path.join(TF_ROOT, "examples", example, "regions.auto.tfvars")
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "terraform.tfstate")
            rc, out, err = terraform(["apply", "-auto-approve", "-input=false", "-no-color", "-lock=false",
                                      f"-state={state}", f"-var-file={tfvars}"], harness)
            c.check(rc == 0, f"apply of the topology of {example}", (out + err)[-3000:])
            if rc != 0:
                continue
            rc, out, err = terraform(["output", "-no-color", "-json", f"-state={state}"], harness)
            c.check(rc == 0, f"outputs of {example}", err)
            outputs = {k: v["value"] for k, v in json.loads(out).items()}
        rendered[example] = outputs
        target = os.path.join(out_dir, example)
        os.makedirs(target, exist_ok=True)
        for old in os.listdir(target):
            os.remove(os.path.join(target, old))
        for region, text in outputs["configs"].items():
            with open(os.path.join(target, f"{region}.toml"), "w") as f:
                f.write(text)
        # Everything the harness gave, for tests/it/terraform.rs (which runs a worker on it).
        with open(os.path.join(out_dir, f"{example}.json"), "w") as f:
            json.dump(outputs, f, indent=1, sort_keys=True)
        print(f"{example}: {len(outputs['flows'])} flows, tern.toml for {', '.join(sorted(outputs['configs']))} in {target}", flush=True)
    return rendered


def check_examples(c, rendered):
    step("three-region and add-region")
    three, four = rendered.get("three-region"), rendered.get("add-region")
    if three:
        regions = set(three["workers"])
        c.check(regions == {"aws-us-east-1", "gcp-europe-west1", "azure-westeurope"}, "three-region runs workers in its three regions", str(regions))
        c.check({w["cloud"] for w in three["workers"].values()} == set(CLOUDS), "three-region uses AWS, GCP and Azure")
        pairs = {tuple(f.split("->")) for f in three["flows"]}
        c.check(pairs == {(a, b) for a in regions for b in regions if a != b}, "three-region is active/active: every region to every other", str(sorted(pairs)))
        for region, text in three["configs"].items():
            c.check('listen = "0.0.0.0:8080"' in text, f"{region}'s tern.toml listens on 0.0.0.0 for the health checks")
            secret_env = three["secret_env"].get(region, {})
            secret_names = set(secret_env.values())
            c.check(secret_names and not any(s in text for s in secret_names) and "password =" not in text and "allow_inline_password" not in text,
                    f"{region}'s workers get secret references, and its tern.toml holds no credentials or secret names")
            # SASL clusters name exactly the environment variables the cloud module fills.
            named = set(re.findall(r'(?:password|username)_env = "([A-Z0-9_]+)"', text))
            c.check(named and named <= set(secret_env), f"{region}'s tern.toml reads its SASL credentials from the variables its workers get",
                    f"named {sorted(named)}, filled {sorted(secret_env)}")
            for alias in ("aws-us-east-1", "azure-westeurope"):
                c.check(f"[clusters.{alias}.sasl]" in text, f"{region}'s tern.toml connects to {alias} with SASL")
            c.check("[clusters.gcp-europe-west1.sasl]" not in text, f"{region}'s tern.toml connects to gcp-europe-west1 without SASL (no credentials)")
    if three and four:
        parsed = {e: unquote(load_hcl(os.path.join(TF_ROOT, "examples", e, "regions.auto.tfvars"))) for e in EXAMPLES}
        old, new = parsed["three-region"]["regions"], parsed["add-region"]["regions"]
        added = set(new) - set(old)
        c.check(len(added) == 1 and all(new[k] == old[k] for k in old), "add-region's regions map is three-region's plus one entry",
                f"added {sorted(added)}, changed {sorted(k for k in old if new.get(k) != old[k])}")
        c.check({k: v for k, v in parsed["add-region"].items() if k != "regions"} == {k: v for k, v in parsed["three-region"].items() if k != "regions"},
                "add-region changes nothing but the regions map")
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            with open(os.path.join(TF_ROOT, "examples", "three-region", name)) as a, open(os.path.join(TF_ROOT, "examples", "add-region", name)) as b:
                c.check(a.read() == b.read(), f"examples/add-region/{name} is the same as three-region's: the regions map is the only change")
        if len(added) == 1:
            (region,) = added
            new_flows = set(four["flows"]) - set(three["flows"])
            c.check(set(three["flows"]) <= set(four["flows"]), "adding a region keeps every existing flow")
            expected = {f"{region}->{o}" for o in old} | {f"{o}->{region}" for o in old}
            c.check(new_flows == expected, f"adding {region} adds its flows to and from every region", str(sorted(new_flows)))
            c.check(set(four["workers"]) == set(three["workers"]) | {region}, f"adding {region} adds its workers")
            for o in old:
                c.check(set(four["workers"][o]["flows"]) == set(three["workers"][o]["flows"]) | {f"{region}->{o}"},
                        f"{o}'s workers gain the flow from {region}")


def variable_type(body):
    t = body.get("type")
    return json.dumps(t, sort_keys=True) if t is not None else None


def check_structure(c):
    step("module and example structure (python-hcl2)")
    modules = sorted(d for d in os.listdir(os.path.join(TF_ROOT, "modules")) if os.path.isdir(os.path.join(TF_ROOT, "modules", d)))
    c.check(set(CLOUD_MODULES + PROVIDER_FREE) <= set(modules), "modules/ holds topology, worker-config and the three cloud modules", str(modules))
    interfaces = {}
    for m in modules:
        d = os.path.join(TF_ROOT, "modules", m)
        for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            c.check(os.path.isfile(os.path.join(d, f)), f"modules/{m}/{f} exists")
        tf = {}
        for f in sorted(os.listdir(d)):
            if f.endswith(".tf"):
                try:
                    parsed = load_hcl(os.path.join(d, f))
                except Exception as e:  # a parse failure is a finding, not a crash
                    c.check(False, f"modules/{m}/{f} parses", str(e)[:300])
                    continue
                for kind in ("variable", "output", "terraform", "module", "resource"):
                    tf.setdefault(kind, []).extend(parsed.get(kind, []))
        variables, outputs = blocks(tf, "variable"), blocks(tf, "output")
        for name, body in variables.items():
            c.check(body.get("type") is not None, f"modules/{m}: variable {name} has a type")
            desc = unquote(body.get("description", ""))
            c.check(isinstance(desc, str) and len(desc.strip()) > 10, f"modules/{m}: variable {name} has a description")
        for name, body in outputs.items():
            c.check(len(str(unquote(body.get("description", ""))).strip()) > 10, f"modules/{m}: output {name} has a description")
        check_versions(c, f"modules/{m}", tf.get("terraform", []), provider_free=m in PROVIDER_FREE)
        readme = open(os.path.join(d, "README.md")).read() if os.path.isfile(os.path.join(d, "README.md")) else ""
        inputs_part, _, outputs_part = readme.partition("## Outputs")
        for name in variables:
            c.check(f"`{name}`" in inputs_part and "## Inputs" in inputs_part, f"modules/{m}/README.md lists input `{name}` under ## Inputs")
        for name in outputs:
            c.check(f"`{name}`" in outputs_part, f"modules/{m}/README.md lists output `{name}` under ## Outputs")
        for name, body in blocks(tf, "module").items():
            src = unquote(body.get("source"))
            c.check(isinstance(src, str) and src.startswith("../"), f"modules/{m}: module {name} comes from a sibling module by relative path", str(src))
        interfaces[m] = ({n: variable_type(b) for n, b in variables.items()}, set(outputs))
        if m in PROVIDER_FREE:
            c.check(not tf.get("resource"), f"modules/{m} is provider-free (no resources)")

    step("same interface on every cloud")
    base_vars, base_outputs = interfaces.get("aws-region", ({}, set()))
    for m in CLOUD_MODULES[1:]:
        if m not in interfaces:
            continue
        vars_, outs = interfaces[m]
        c.check(set(vars_) == set(base_vars), f"{m} has aws-region's inputs", f"differ: {sorted(set(vars_) ^ set(base_vars))}")
        differ = sorted(n for n in set(vars_) & set(base_vars) if vars_[n] != base_vars[n])
        c.check(not differ, f"{m}'s inputs have aws-region's types", f"differ: {differ}")
        c.check(outs == base_outputs, f"{m} has aws-region's outputs", f"differ: {sorted(outs ^ base_outputs)}")

    for e in EXAMPLES:
        d = os.path.join(TF_ROOT, "examples", e)
        for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md", "regions.auto.tfvars"):
            c.check(os.path.isfile(os.path.join(d, f)), f"examples/{e}/{f} exists")
        parsed = {}
        for f in ("main.tf", "versions.tf", "variables.tf"):
            if os.path.isfile(os.path.join(d, f)):
                for kind, entries in load_hcl(os.path.join(d, f)).items():
                    if isinstance(entries, list):
                        parsed.setdefault(kind, []).extend(entries)
        for name, body in blocks(parsed, "variable").items():
            c.check(body.get("type") is not None and len(str(unquote(body.get("description", ""))).strip()) > 10,
                    f"examples/{e}: variable {name} is typed and described")
        mods = blocks(parsed, "module")
        sources = {n: unquote(b.get("source")) for n, b in mods.items()}
        c.check(all(isinstance(s, str) and s.startswith("../../modules/") for s in sources.values()),
                f"examples/{e} consumes the modules by relative path", str(sources))
        c.check({"../../modules/topology"} | {f"../../modules/{m}" for m in CLOUD_MODULES} <= set(sources.values()),
                f"examples/{e} uses the topology module and all three cloud modules", str(sorted(sources.values())))
        cloud_args = [set(k for k in b if k not in ("source", "for_each", "__is_block__")) for n, b in mods.items() if sources[n] in [f"../../modules/{m}" for m in CLOUD_MODULES]]
        c.check(len(cloud_args) == 3 and all(a == cloud_args[0] for a in cloud_args), f"examples/{e} passes the same inputs to every cloud module")
        check_versions(c, f"examples/{e}", parsed.get("terraform", []), provider_free=False)

    step("Dockerfile")
    dockerfile = os.path.join(REPO, "docker", "Dockerfile")
    text = open(dockerfile).read() if os.path.isfile(dockerfile) else ""
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    c.check(len(froms) >= 2 and froms[0].startswith("rust:") and "debian" in froms[-1] and "slim" in froms[-1],
            "docker/Dockerfile builds in a rust image and runs on debian-slim", str(froms))
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    c.check(bool(users) and users[-1] not in ("root", "0"), "the image runs as a non-root user")
    c.check('CMD ["run", "--config", "/etc/tern/tern.toml"]' in text, "the image runs `tern run --config /etc/tern/tern.toml`")



def check_probes_and_secrets(c):
    """Restarts follow liveness and traffic follows readiness on every cloud, the paths are
    routes Tern serves, and each cloud lets its workers read exactly the secrets they name."""
    step("liveness, readiness and secret scopes")
    outputs = blocks(load_hcl(os.path.join(TF_ROOT, "modules", "worker-config", "outputs.tf")), "output")
    paths = {k: unquote(outputs.get(f"{k}_path", {}).get("value")) for k in ("liveness", "readiness")}
    c.check(paths == {"liveness": "/livez", "readiness": "/readyz"}, "worker-config gives liveness /livez and readiness /readyz", str(paths))
    routes = open(os.path.join(REPO, "web", "src", "lib.rs")).read()
    for kind, path in paths.items():
        c.check(f'.route("{path}", get(' in routes, f"Tern's web server routes the {kind} path {path} (web/src/lib.rs)")
    mentions = []
    for root in (os.path.join(TF_ROOT, "modules"), os.path.join(TF_ROOT, "examples"), os.path.join(REPO, "docker")):
        for d, _, files in os.walk(root):
            for f in files:
                text = open(os.path.join(d, f), errors="replace").read()
                if "/healthz" in text or "health_check_path" in text:
                    mentions.append(os.path.relpath(os.path.join(d, f), REPO))
    c.check(not mentions, "no module, example or image probes /healthz, which fails on a remote cluster's outage", str(mentions))

    def main_tf(cloud):
        return open(os.path.join(TF_ROOT, "modules", f"{cloud}-region", "main.tf")).read()

    def block(text, header):
        """The body of the first block opening with header (brace-matched)."""
        start = text.find(header)
        if start < 0:
            return ""
        i = text.index("{", start)
        depth = 0
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i:j + 1]
        return ""

    aws, gcp, azure = main_tf("aws"), main_tf("gcp"), main_tf("azure")
    health = block(aws, "healthCheck =")
    c.check("module.worker.liveness_path" in health, "AWS: the ECS container health check (task replacement, deployment rollback) probes liveness", health)
    check = block(gcp, 'resource "google_compute_health_check" "workers"')
    c.check(re.search(r"request_path\s*=\s*module\.worker\.liveness_path", check) is not None, "GCP: autohealing probes liveness", check)
    c.check("google_compute_health_check.workers.id" in block(gcp, "auto_healing_policies"), "GCP: the group autoheals on that check")
    for probe, kind in (("liveness_probe", "liveness"), ("readiness_probe", "readiness")):
        body = block(azure, probe)
        c.check(re.search(rf"path\s*=\s*module\.worker\.{kind}_path", body) is not None, f"Azure: the {probe} probes {kind}", body)
    dockerfile = open(os.path.join(REPO, "docker", "Dockerfile")).read()
    c.check(re.search(r"HEALTHCHECK[^\n]*\\\n[^\n]*/livez", dockerfile) is not None, "the image's HEALTHCHECK probes /livez")

    # Secrets: AWS lists the secrets' ARNs, GCP binds per secret, Azure assigns per secret.
    policy = block(aws, 'data "aws_iam_policy_document" "read_secrets"')
    c.check("aws_secretsmanager_secret.env" in policy and '"*"' not in policy, "AWS: the execution role reads the named secrets' ARNs only", policy)
    binding = block(gcp, 'resource "google_secret_manager_secret_iam_member" "workers"')
    c.check("for_each = toset(values(var.secret_env))" in binding, "GCP: one binding per named secret", binding)
    roles = [block(azure, m.group(0)) for m in re.finditer(r'resource "azurerm_role_assignment" "[^"]+"', azure)]
    vault_wide = [r for r in roles if re.search(r"scope\s*=\s*(var\.secret_store|data\.azurerm_key_vault\.secrets\[0\]\.id)\s*$", r, re.M)]
    per_secret = [r for r in roles if "for_each = toset(values(var.secret_env))" in r and re.search(r'scope\s*=\s*"\$\{data\.azurerm_key_vault\.secrets\[0\]\.id\}/secrets/\$\{each\.value\}"', r)]
    c.check(not vault_wide and len(per_secret) == 1, "Azure: the identity reads each named secret (a role assignment scoped to <vault>/secrets/<name>), not the whole vault", "\n".join(roles))


def check_versions(c, where, terraform_blocks, provider_free):
    required = [unquote(b.get("required_version")) for b in terraform_blocks if b.get("required_version")]
    c.check(len(required) == 1 and re.search(r">=\s*\d", required[0] or "") and re.search(r"<\s*\d", required[0] or ""),
            f"{where} pins the Terraform version with a lower and an upper bound", str(required))
    providers = {}
    for b in terraform_blocks:
        for rp in b.get("required_providers", []):
            providers.update(unquote(rp))
    if provider_free:
        c.check(not providers, f"{where} requires no provider", str(providers))
    else:
        c.check(bool(providers), f"{where} declares its providers")
        for name, spec in providers.items():
            c.check(isinstance(spec, dict) and spec.get("source", "").startswith("hashicorp/") and re.match(r"^>=\s*\d", spec.get("version", "")),
                    f"{where}: provider {name} has a source and a lower version bound", str(spec))


def checkov(c, binary):
    step("checkov (offline)")
    if not binary or not os.path.exists(binary):
        c.check(False, "checkov is installed", f"{binary} is missing: run scripts/test.sh, which installs it into .venv-checkov")
        return
    runs = [
        ("terraform", ["-d", TF_ROOT, "--framework", "terraform", "--external-checks-dir", os.path.join(HERE, "checkov")]),
        ("Dockerfile", ["-f", os.path.join(REPO, "docker", "Dockerfile"), "--framework", "dockerfile"]),
    ]
    for what, args in runs:
        p = subprocess.run([binary, *args, "--skip-download", "--quiet", "-o", "json"], capture_output=True, text=True, cwd=REPO)
        try:
            reports = json.loads(p.stdout)
        except json.JSONDecodeError:
            c.check(False, f"checkov {what} produced a report", (p.stdout + p.stderr)[-2000:])
            continue
        for report in reports if isinstance(reports, list) else [reports]:
            # With --quiet a clean run is reported as a bare summary.
            results = report.get("results", {})
            summary = report.get("summary", report)
            failed = results.get("failed_checks", [])
            for f in failed:
                print(f"  checkov FAILED {f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']}:{f['file_line_range']})")
            c.check(not failed and summary.get("failed", 0) == 0, f"checkov {what}: no failed checks", f"{summary}")
            c.check(summary.get("parsing_errors", 0) == 0, f"checkov {what}: every file parses", str(results.get("parsing_errors")))
            print(f"  checkov {what}: {summary.get('passed')} passed, {summary.get('failed')} failed, {summary.get('skipped')} skipped (documented in the code)", flush=True)
            c.check(summary.get("passed", 0) > 0, f"checkov {what} ran checks")


def tern_check(c, tern, out_dir):
    step("tern check --offline on the rendered tern.toml files")
    for example in EXAMPLES:
        d = os.path.join(out_dir, example)
        files = sorted(os.listdir(d)) if os.path.isdir(d) else []
        c.check(bool(files), f"{example} rendered tern.toml files")
        for f in files:
            p = subprocess.run([tern, "check", "--offline", "--config", os.path.join(d, f)], capture_output=True, text=True)
            print(p.stdout.strip(), flush=True)
            c.check(p.returncode == 0, f"tern check --offline {example}/{f}", p.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "test-artifacts", "terraform"), help="where the rendered tern.toml files go")
    ap.add_argument("--tern", help="a tern binary: run `tern check --offline` on the rendered files")
    ap.add_argument("--checkov", default=os.path.join(REPO, ".venv-checkov", "bin", "checkov"), help="the checkov command")
    args = ap.parse_args()

    started = time.monotonic()
    c = Checks()
    rendered = {}

    def run(fn, *a):
        try:
            return fn(c, *a)
        except Exception as e:  # one broken step must not hide the others' results
            import traceback

            traceback.print_exc()
            c.check(False, f"{fn.__name__} ran to the end", repr(e))

    run(fmt)
    run(provider_free)
    run(validation_messages)
    rendered = run(render_examples, args.out) or {}
    run(check_examples, rendered)
    run(check_structure)
    run(check_probes_and_secrets)
    run(checkov, args.checkov)
    if args.tern:
        run(tern_check, args.tern, args.out)
    print(f"terraform checks took {time.monotonic() - started:.0f} s")
    print(f"terraform: {c.passed} passed, {len(c.failures)} failed")
    if c.failures:
        print("\nfailures:\n- " + "\n- ".join(c.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
