#!/usr/bin/env python3
"""Does a model come down on the block after a mid-chain start? For the first N chains of an
`--expert-leads 1` evaluation (`vlasim eval --expert-leads 1`'s results.json) whose second subtask
is a rotation or a lift and whose first is (or, with --after-other, is not) a push, `vlasim rollout
--expert-first <first task> --instruction <second task's evaluation phrasing> --json` replays the
model's attempt from the state the expert left. Per chain it prints whether the task got done, the
highest the gripper rose in the first 60 steps (the expert climbs to its 0.22 m transit height) and
how many of the first 240 steps it spent hovering 0.07–0.16 m over the desk.

    scripts/hover_probe.py assets/models/paligemma-wide reports/expert-leads/paligemma-wide.json [--chains 16] [--after-other]
"""
import argparse
import json
import os
import re
import subprocess


def eval_phrasings(vlasim):
    """Task name -> its held-out evaluation phrasing, as `vlasim lang --check` lists them."""
    listing = subprocess.run([vlasim, "lang", "--check"], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r'^(\w+)\s+\d+ train\s+ok [\d.]+\s+"(.*)"$', listing, re.MULTILINE))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("expert_leads_results")
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--after-other", action="store_true", help="chains whose first subtask is not a push")
    parser.add_argument("--vlasim", default="target/release/vlasim")
    args = parser.parse_args()

    phrasing = eval_phrasings(args.vlasim)
    chains = json.load(open(args.expert_leads_results))["chains"]
    picked = [c for c in chains if len(c["subtasks"]) >= 2
              and c["tasks"][0].startswith("push_") != args.after_other
              and c["tasks"][1].startswith(("rotate_", "lift_"))][:args.chains]
    rows = []
    for chain in picked:
        first, second = chain["tasks"][:2]
        command = [args.vlasim, "rollout", "--model", args.model, "--seed", str(chain["index"]),
                   "--expert-first", first.replace("_", " "), "--instruction", phrasing[second], "--json"]
        env = dict(os.environ, RAYON_NUM_THREADS="1")
        finished = subprocess.run(command, capture_output=True, text=True, env=env)
        if finished.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr}")
        run = json.loads(finished.stdout)
        heights = [step["robot_obs"][2] for step in run["steps"]]
        done = second in run["completed"]
        rise = max(heights[:60])
        hovering = sum(0.07 < z < 0.16 for z in heights[:240])
        rows.append((done, rise, hovering))
        print(f"chain {chain['index']:4} {first:24} -> {second:24} done {done!s:5} "
              f"highest in 60 steps {rise:.3f} m, hovering {hovering}/240 steps", flush=True)
    rises = sorted(rise for _, rise, _ in rows)
    print(f"done {sum(done for done, _, _ in rows)}/{len(rows)}; highest in 60 steps: median {rises[len(rises) // 2]:.3f} m; "
          f"hovering > 100 of 240 steps: {sum(hovering > 100 for _, _, hovering in rows)}/{len(rows)}")


if __name__ == "__main__":
    main()
