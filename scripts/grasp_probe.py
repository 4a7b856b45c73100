#!/usr/bin/env python3
"""Does a model find the block it is asked to lift? For each colour and start state (evaluation
chain seeds 0..N-1 of scene d) from which that lift can start, `vlasim rollout --json` runs "pick up
the <colour> block from the desk" for 200 steps; the probe reports where the gripper first closed,
relative to that block and to the nearest of the three (scene_obs: a model that finds blocks but
not the one named grasps near another), and how many lifts succeeded. `expert` as the model is the
reference: the scripted expert closes on the block.

    scripts/grasp_probe.py runs/paligemma-wide-v7-scene [--seeds 10] [--vlasim target/release/vlasim]
"""
import argparse
import json
import math
import subprocess

# Where each block's position starts in CALVIN's 24-D scene_obs.
BLOCK_OFFSET = {"red": 6, "blue": 12, "pink": 18}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--vlasim", default="target/release/vlasim")
    args = parser.parse_args()

    errors, nearest_errors, lifts, attempts = [], [], 0, 0
    for colour, offset in BLOCK_OFFSET.items():
        for seed in range(args.seeds):
            command = [args.vlasim, "rollout", "--model", args.model, "--seed", str(seed), "--steps", "200",
                       "--instruction", f"pick up the {colour} block from the desk", "--json"]
            finished = subprocess.run(command, capture_output=True, text=True)
            if args.model == "expert" and "cannot start" in finished.stderr:
                continue  # the expert refuses a lift that cannot start
            finished.check_returncode()
            run = json.loads(finished.stdout)
            if not run["task_can_start"]:
                continue
            steps = run["steps"]
            attempts += 1
            lifts += run["task"] in run["completed"]
            closes = [i for i in range(1, len(steps)) if steps[i]["action"][6] < 0 <= steps[i - 1]["action"][6]]
            if not closes:
                print(f"{colour} seed {seed}: never closed the gripper")
                continue
            hand, scene = steps[closes[0]]["robot_obs"], steps[closes[0]]["scene_obs"]
            dx, dy = hand[0] - scene[offset], hand[1] - scene[offset + 1]
            errors.append(math.hypot(dx, dy))
            nearest, nearest_colour = min(
                (math.hypot(hand[0] - scene[o], hand[1] - scene[o + 1]), c) for c, o in BLOCK_OFFSET.items())
            nearest_errors.append(nearest)
            print(f"{colour} seed {seed}: first closed at step {closes[0]}, {dx:+.3f} m / {dy:+.3f} m from the block, "
                  f"{nearest:.3f} m from the nearest ({nearest_colour})")
    print(f"{args.model}: {attempts} lifts that can start, {lifts} done; first grasp {summary(errors)} from the "
          f"block named, {summary(nearest_errors)} from the nearest block")


def summary(errors):
    """Median and how many within 3 cm."""
    if not errors:
        return "-"
    errors = sorted(errors)
    near = sum(error < 0.03 for error in errors)
    return f"{errors[len(errors) // 2]:.3f} m (median; {near} of {len(errors)} within 3 cm)"


if __name__ == "__main__":
    main()
