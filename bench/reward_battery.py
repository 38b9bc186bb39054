"""Can a degenerate reply policy beat the reference replies under a built-in domain reward?

Plays every policy of `stateset_hpo.grpo.reward_battery.POLICIES` (empty, polite template,
ramble, action-listing templates, keyword soup, the first reply repeated, ...) turn by turn
through each domain's conversations, scores them with the domain's reward, and prints the
table (test split, and the selection split the search optimises). Exits 1 when the reference
replies are not ahead of every other policy by at least MARGIN (0.15) on the test split.

    python bench/reward_battery.py
"""

import sys

from stateset_hpo.grpo import ConversationEnvironment, domain_reward
from stateset_hpo.grpo.reward_battery import MARGIN, REFERENCE, battery
from stateset_hpo.grpo.scenarios import DOMAINS


def main() -> int:
    tables = {split: {d: battery(ConversationEnvironment(d), domain_reward(d), split) for d in DOMAINS}
              for split in ("test", "selection")}
    failed = []
    for split, table in tables.items():
        print(f"\n{split} split (mean turn reward per conversation, each domain's own reward)\n")
        print("| policy | " + " | ".join(DOMAINS) + " |")
        print("|---|" + "---|" * len(DOMAINS))
        for name in table[DOMAINS[0]]:
            print(f"| {name} | " + " | ".join(f"{table[d][name]:.3f}" for d in DOMAINS) + " |")
        margins = {d: table[d][REFERENCE] - max(v for k, v in table[d].items() if k != REFERENCE) for d in DOMAINS}
        print("| **margin of the reference over the best other** | "
              + " | ".join(f"{m:+.3f}" for m in margins.values()) + " |")
        if split == "test":
            failed = [d for d, m in margins.items() if m < MARGIN]
    if failed:
        print(f"\nFAIL: the reference replies lead by less than {MARGIN} in {', '.join(failed)}")
        return 1
    print(f"\nOK: the reference replies lead every degenerate policy by at least {MARGIN} in every domain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
