#!/usr/bin/env python3
"""Success by position in the chain, from `vlasim eval`'s results.json files: how often the 1st
subtask succeeds from the neutral start, and how often a later one succeeds given that the ones
before it did. A model that does a task from the neutral start but not from where an earlier
subtask left the arm shows a drop between the first column and the others, per task too.

    scripts/chain_positions.py assets/models/paligemma-wide/results.json [more results.json ...]
"""
import argparse
import json
from collections import defaultdict


def rate(successes, attempts):
    return f"{successes}/{attempts} ({100 * successes / attempts:.0f} %)" if attempts else "–"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--by-task", action="store_true", help="also split by task: first subtask against later ones")
    args = parser.parse_args()
    for path in args.results:
        with open(path) as file:
            chains = json.load(file)["chains"]
        by_position = defaultdict(lambda: [0, 0])
        first, later = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
        for chain in chains:
            for position, subtask in enumerate(chain["subtasks"]):
                for tally in (by_position[position], (first if position == 0 else later)[subtask["task"]]):
                    tally[0] += subtask["success"]
                    tally[1] += 1
        print(path)
        print("  " + " | ".join(f"subtask {p + 1}: {rate(*by_position[p])}" for p in sorted(by_position)))
        if args.by_task:
            for task in sorted(set(first) | set(later)):
                print(f"  {task:26} first {rate(*first[task]):16} later {rate(*later[task])}")


if __name__ == "__main__":
    main()
