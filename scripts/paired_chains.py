#!/usr/bin/env python3
"""Two models compared chain by chain, from `vlasim eval`'s results.json files over the same chains
(same seed, scene and count): the difference of Avg. Len. with its 95 % interval from the paired
differences (much tighter than the two intervals side by side, since both models meet the same
chains), and successes / attempts per task family for each.

    scripts/paired_chains.py runs/candidate/results.json assets/models/kosmos-wide/results.json
"""
import argparse
import json
import math
import signal
from collections import defaultdict

FAMILIES = [
    ("lifts from the desk", lambda t: t.startswith("lift_") and t.endswith("_table")),
    ("lifts from drawer/slider", lambda t: t.startswith("lift_")),
    ("rotations", lambda t: t.startswith("rotate_")),
    ("pushes", lambda t: t.startswith("push_") and t != "push_into_drawer"),
    ("placing", lambda t: t.startswith("place_") or t == "push_into_drawer"),
    ("stacking", lambda t: t in ("stack_block", "unstack_block")),
    ("drawer", lambda t: t.endswith("_drawer")),
    ("slider", lambda t: t.startswith("move_slider")),
    ("LED", lambda t: t.endswith("_led")),
    ("bulb", lambda t: t.endswith("_lightbulb")),
]


def family(task):
    return next((name for name, matches in FAMILIES if matches(task)), task)


def load(path):
    with open(path) as file:
        results = json.load(file)
    return {chain["index"]: chain for chain in results["chains"]}, results


def chain_length(chain):
    return sum(subtask["success"] for subtask in chain["subtasks"])


def by_family(chains):
    tally = defaultdict(lambda: [0, 0])
    for chain in chains.values():
        for subtask in chain["subtasks"]:
            counts = tally[family(subtask["task"])]
            counts[0] += subtask["success"]
            counts[1] += 1
    return tally


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into `head`
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate")
    parser.add_argument("reference")
    args = parser.parse_args()
    (candidate, candidate_results), (reference, reference_results) = load(args.candidate), load(args.reference)
    for key in ("scene", "seed", "expert_leads"):
        if candidate_results[key] != reference_results[key]:
            raise SystemExit(f"the two evaluations differ in {key}: {candidate_results[key]} against {reference_results[key]}")
    if candidate.keys() != reference.keys():
        raise SystemExit(f"the two evaluations cover different chains ({len(candidate)} against {len(reference)})")
    for index in candidate:
        if candidate[index]["tasks"] != reference[index]["tasks"]:
            raise SystemExit(f"chain {index} has different tasks in the two files")
    differences = [chain_length(candidate[i]) - chain_length(reference[i]) for i in candidate]
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    print(f"{n} chains: Avg. Len. {candidate_results['metrics']['avg_len']:.3f} against "
          f"{reference_results['metrics']['avg_len']:.3f}, paired difference {mean:+.3f} ± {1.96 * sd / math.sqrt(n):.3f}")
    print(f"longer chains {sum(d > 0 for d in differences)}, shorter {sum(d < 0 for d in differences)}, "
          f"equal {sum(d == 0 for d in differences)}")
    candidate_families, reference_families = by_family(candidate), by_family(reference)
    for name, _ in FAMILIES:
        c, r = candidate_families.get(name, [0, 0]), reference_families.get(name, [0, 0])
        print(f"  {name:26} {f'{c[0]}/{c[1]}':>9} against {f'{r[0]}/{r[1]}':>9}")


if __name__ == "__main__":
    main()
