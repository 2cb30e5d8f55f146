"""deploy/ecs/yelb.yaml's rules that cfn-lint cannot know (scripts/test-deploy.sh).

- Every ECS service has a deployment circuit breaker that rolls back, so a
  task that never gets healthy does not retry forever.
- The UI keeps idle connections longer than the load balancer does
  (YELB_UI_HEADER_TIMEOUT > the ALB's idle_timeout.timeout_seconds), or the
  ALB reuses a connection the UI just closed and answers 502.

`ecs.py FILE` checks FILE; `--self-test` also checks that each known
mistake, made in a copy, is caught.
"""

import re
import sys

import yaml


class Loader(yaml.SafeLoader):
    """CloudFormation's short tags (!Ref, !If, ...) read as plain values."""


Loader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node)))


def check(text):
    resources = yaml.load(text, Loader=Loader)["Resources"]
    services = {n: r for n, r in resources.items() if r["Type"] == "AWS::ECS::Service"}
    assert len(services) >= 4, f"only {len(services)} ECS services"
    for name, service in services.items():
        breaker = service["Properties"].get("DeploymentConfiguration", {}).get("DeploymentCircuitBreaker", {})
        assert breaker.get("Enable") is True and breaker.get("Rollback") is True, f"{name}: no circuit breaker with rollback"
    albs = [r for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"]
    idle = [int(a["Value"]) for alb in albs for a in alb["Properties"].get("LoadBalancerAttributes", [])
            if a["Key"] == "idle_timeout.timeout_seconds"]
    assert idle, "the ALB's idle timeout is not set (AWS's default is 60 s): set it, so the UI's can be compared"
    env = {}
    for r in resources.values():
        if r["Type"] == "AWS::ECS::TaskDefinition":
            for c in r["Properties"]["ContainerDefinitions"]:
                if c["Name"] == "yelb-ui":
                    env = {e["Name"]: e["Value"] for e in c.get("Environment", [])}
    ui = int(env.get("YELB_UI_HEADER_TIMEOUT", "10"))
    assert ui > max(idle), f"the UI closes idle connections after {ui} s, the ALB keeps them {max(idle)} s: 502s"
    return len(services)


MUTATIONS = [
    (r"(DeploymentCircuitBreaker: \{Enable: true, Rollback: )true", r"\1false"),
    (r"\n +DeploymentCircuitBreaker: \{Enable: true, Rollback: true\}", ""),
    (r'\{Name: YELB_UI_HEADER_TIMEOUT, Value: "75"\}', '{Name: YELB_UI_HEADER_TIMEOUT, Value: "10"}'),
    (r'\n +- \{Name: YELB_UI_HEADER_TIMEOUT, Value: "75"\}', ""),
    (r'\n +- \{Key: idle_timeout.timeout_seconds, Value: "60"\}', ""),
]


def main(argv):
    args = [a for a in argv if a != "--self-test"]
    text = open(args[0]).read()
    try:
        n = check(text)
    except AssertionError as e:
        raise SystemExit(f"ecs: {e}")
    print(f"  ecs: {n} services with rollback circuit breakers; the UI outlasts the ALB's idle timeout")
    if "--self-test" in argv:
        for pattern, replacement in MUTATIONS:
            mutated, count = re.subn(pattern, replacement, text, count=1)
            assert count == 1, f"mutation {pattern!r} found nothing: update the self-test"
            try:
                check(mutated)
            except AssertionError:
                continue
            raise SystemExit(f"ecs.py missed a mutation: {pattern!r} -> {replacement!r}")
        print(f"  ecs.py: all {len(MUTATIONS)} mutations caught")


if __name__ == "__main__":
    main(sys.argv[1:])
