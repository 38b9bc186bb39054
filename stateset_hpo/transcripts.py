"""What the agent actually said: a few greedy test conversations kept for people to read.

A score can be gamed by a template; a person reading three replies sees it at once. A run
scored on the test split (validation) keeps one conversation per topic, and
`degenerate_replies` says in words when the replies look like a template, an echo or
nothing, so the summary can warn before anyone acts on the verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

PER_TOPIC = 1  # conversations kept per topic: enough to see the pattern, small in summary.json


def transcripts(episodes: Sequence[Any], per_topic: int = PER_TOPIC) -> List[Dict[str, Any]]:
    """[{index, topic, reward, conversation}] for the first ``per_topic`` episodes of each topic
    (``index``: the conversation's position in the split, which pairs two runs' transcripts);
    the system message is left out (it is the same for every conversation)."""
    kept: Dict[str, int] = {}
    out = []
    for index, episode in enumerate(episodes):
        topic = episode.scenario.topic
        if kept.get(topic, 0) >= per_topic:
            continue
        kept[topic] = kept.get(topic, 0) + 1
        out.append({"index": index, "topic": topic, "reward": float(episode.reward),
                    "conversation": [dict(m) for m in episode.conversation if m["role"] != "system"]})
    return out


def agent_replies(transcript: Dict[str, Any]) -> List[str]:
    return [m["content"] for m in transcript["conversation"] if m["role"] == "assistant"]


def degenerate_replies(transcripts_: Sequence[Dict[str, Any]]) -> Optional[str]:
    """Why these conversations look degenerate (most replies empty, one reply said in most
    conversations of different topics, or the user's words echoed back), or None.

    Each test is about the replies themselves, not the reward: a user's own reward may score a
    template well, and these are the patterns a GRPO run finds when it games one."""
    replies = [r.strip() for t in transcripts_ for r in agent_replies(t)]
    if not replies:
        return None
    empty = sum(not r for r in replies)
    if empty * 2 > len(replies):
        return f"{empty} of {len(replies)} replies are empty"
    firsts = [said[0].strip() for said in map(agent_replies, transcripts_) if said]
    if len({t["topic"] for t in transcripts_}) > 1 and len(firsts) > 2:
        common, count = Counter(firsts).most_common(1)[0]
        if common and count * 2 > len(firsts):
            return f"the same first reply in {count} of {len(firsts)} conversations of different topics: {common[:80]!r}"
    echoed = 0
    for t in transcripts_:
        messages = t["conversation"]
        echoed += sum(1 for before, reply in zip(messages, messages[1:])
                      if reply["role"] == "assistant" and before["role"] == "user"
                      and reply["content"].strip() and reply["content"].strip() == before["content"].strip())
    if echoed * 2 > len(replies):
        return f"{echoed} of {len(replies)} replies repeat the user's message word for word"
    return None
