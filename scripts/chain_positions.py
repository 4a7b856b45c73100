#!/usr/bin/env python3
"""Success by position in the chain, from `vlasim eval`'s results.json files: how often the 1st
subtask succeeds from the neutral start, and how often a later one succeeds given that the ones
before it did. A model that does a task from the neutral start but not from where an earlier
subtask left the arm shows a drop between the first column and the others, per task too.

    scripts/chain_positions.py assets/models/paligemma-wide/results.json [more results.json ...]

`--transitions` splits the later subtasks by what came before: success of each task family after
each family, e.g. how often a rotation succeeds right after a push.
"""
import argparse
import json
import signal
from collections import defaultdict

from paired_chains import family


def rate(successes, attempts):
    return f"{successes}/{attempts} ({100 * successes / attempts:.0f} %)" if attempts else "–"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into `head`
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--by-task", action="store_true", help="also split by task: first subtask against later ones")
    parser.add_argument("--transitions", action="store_true", help="also split later subtasks by the family of the one before")
    args = parser.parse_args()
    for path in args.results:
        with open(path) as file:
            chains = json.load(file)["chains"]
        by_position = defaultdict(lambda: [0, 0])
        first, later = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
        after = defaultdict(lambda: [0, 0])
        for chain in chains:
            subtasks = chain["subtasks"]
            for position, subtask in enumerate(subtasks):
                tallies = [by_position[position], (first if position == 0 else later)[subtask["task"]]]
                if position > 0:
                    tallies.append(after[family(subtasks[position - 1]["task"]), family(subtask["task"])])
                for tally in tallies:
                    tally[0] += subtask["success"]
                    tally[1] += 1
        print(path)
        print("  " + " | ".join(f"subtask {p + 1}: {rate(*by_position[p])}" for p in sorted(by_position)))
        if args.by_task:
            for task in sorted(set(first) | set(later)):
                print(f"  {task:26} first {rate(*first[task]):16} later {rate(*later[task])}")
        if args.transitions:
            for (before, then), tally in sorted(after.items(), key=lambda item: -item[1][1]):
                print(f"  {then:26} after {before:26} {rate(*tally)}")


if __name__ == "__main__":
    main()
