"""Can a degenerate reply policy beat the reference replies under a built-in domain reward?

Plays every policy of `stateset_hpo.grpo.reward_battery.POLICIES` (empty, polite template,
ramble, action-listing templates, keyword soup, the first reply repeated, ...) turn by turn
through each domain's conversations, scores them with the domain's reward, and prints the
table (test split, and the selection split the search optimises). Exits 1 when the reference
replies are not ahead of every other policy by at least MARGIN (0.15) on the test split.

    python bench/reward_battery.py
"""

import sys

from harness import Record
from stateset_hpo.grpo import ConversationEnvironment, domain_reward
from stateset_hpo.grpo.reward_battery import MARGIN, REFERENCE, battery
from stateset_hpo.grpo.scenarios import DOMAINS


def main() -> int:
    record = Record("reward_battery", "fixed reply policies a GRPO run could converge to, played turn by turn "
                    "through every conversation of each domain (two agent turns) and scored by the domain's own "
                    "reward, against the reference replies", {"margin": MARGIN})
    for split in ("test", "selection"):
        table = {d: battery(ConversationEnvironment(d), domain_reward(d), split) for d in DOMAINS}
        margins = {d: table[d][REFERENCE] - max(v for k, v in table[d].items() if k != REFERENCE) for d in DOMAINS}
        rows = [[name] + [f"{table[d][name]:.3f}" for d in DOMAINS] for name in table[DOMAINS[0]]]
        rows.append(["**margin of the reference over the best other**"] + [f"{m:+.3f}" for m in margins.values()])
        record.table(f"{split} split, mean turn reward per conversation", ["policy", *DOMAINS], rows)
        if split == "test":
            for domain, margin in margins.items():
                record.goal(f"margin of the reference replies over the best other policy, {domain}", margin, MARGIN,
                            digits=3)
    return record.finish()


if __name__ == "__main__":
    sys.exit(main())
