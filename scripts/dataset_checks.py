#!/usr/bin/env python3
"""Two checks over a collected dataset's parquet files (needs `pip install pyarrow numpy`).

Physics blow-ups: episodes with frames in which a block lies beyond the 4 m floor slab (|x| or |y| >
2 m) or under it (its centre below -0.8 m: the floor is at -0.75 m, so a block pushed off the desk
and lying there is not counted), the door beyond 0.6 m along its runners or the drawer below -0.06 m.

Climbs beside the block: single-task lifts from the desk and rotations that begin with the hand low
(below 0.12 m) and within 10 cm (horizontally) of the block named, and how many of them rise above
0.18 m on the way (the expert before commit 68e6b77 climbed to its 0.22 m transit height first).

    scripts/dataset_checks.py data/demos-v12
"""
import argparse
import collections
import glob

import numpy as np
import pyarrow.parquet as pq

# observation.environment_state: door, drawer, button, switch, LED, bulb, then 6 values per block
# (position, Euler angles) in the order red, blue, pink.
BLOCK_OFFSET = {"red": 6, "blue": 12, "pink": 18}


def episodes_meta(root):
    table = pq.read_table(sorted(glob.glob(f"{root}/meta/episodes/*/*.parquet"))[0]).to_pydict()
    return {e: (t, s) for e, t, s in zip(table["episode_index"], table["task_name"], table["source"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    args = parser.parse_args()
    meta = episodes_meta(args.dataset)
    broken_frames = collections.Counter()
    low_near = collections.Counter()
    climbed = collections.Counter()
    frames = 0
    for path in sorted(glob.glob(f"{args.dataset}/data/chunk-*/file-*.parquet")):
        table = pq.read_table(path, columns=["episode_index", "observation.environment_state", "observation.state"])
        episode = np.array(table.column("episode_index").to_pylist())
        env = np.array(table.column("observation.environment_state").to_pylist(), dtype=np.float64)
        hand = np.array(table.column("observation.state").to_pylist(), dtype=np.float64)[:, :3]
        frames += len(episode)
        blocks = env[:, 6:24].reshape(-1, 3, 6)[:, :, :3]
        off_floor = (np.abs(blocks[:, :, :2]) > 2.0).any(axis=2) | (blocks[:, :, 2] < -0.8)
        broken = off_floor.any(axis=1) | (env[:, 0] > 0.6) | (env[:, 1] < -0.06)
        for e in episode[broken]:
            broken_frames[int(e)] += 1
        for e in np.unique(episode):
            task, source = meta[int(e)]
            family = task.split("_")[0]
            if source != "demo" or not (task.startswith("rotate_") or (family == "lift" and task.endswith("_table"))):
                continue
            color = next(c for c in BLOCK_OFFSET if f"_{c}_" in task)
            rows = episode == e
            block = env[rows][0, BLOCK_OFFSET[color] : BLOCK_OFFSET[color] + 3]
            path_m = hand[rows]
            if np.linalg.norm(path_m[0, :2] - block[:2]) < 0.1 and path_m[0, 2] < 0.12:
                low_near[family] += 1
                climbed[family] += int(path_m[:, 2].max() > 0.18)
    sources = collections.Counter(meta[e][1] for e in broken_frames)
    print(f"{frames} frames, {len(meta)} episodes")
    print(
        f"physics blow-ups: {len(broken_frames)} episodes, {sum(broken_frames.values())} frames"
        f" ({', '.join(f'{n} {s}' for s, n in sorted(sources.items()))})"
    )
    for family in sorted(low_near):
        print(f"{family}: {low_near[family]} start low within 10 cm of the block, {climbed[family]} of them rise above 0.18 m")


if __name__ == "__main__":
    main()
