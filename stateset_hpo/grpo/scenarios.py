"""Scenarios for three domains: what the user wants, and what a good agent says and does.

Each domain has five topics, each played out with ten items and three user scripts (how the
user words the request, answers and complains): 150 scenarios per domain. They fall into
three disjoint splits, so the number a study reports was never trained on nor selected on:

- train (70 per domain): items 0-6 with scripts 0-1; the rollouts;
- selection (20 per domain): items 7-8 with scripts 0-1; what the search optimises and prunes on
  (``eval_*`` metrics, every iteration). Two items, not one: with one item (10 conversations)
  a run's selection score had a standard error about as large as the gaps the search ranks;
  the evaluation is one batched greedy pass, so 20 cost about 10% more time than 10;
- test (60 per domain): item 9 with every script, and script 2 of every other item;
  touched only by validation (``test_*`` metrics), so a test conversation is a new item, a
  new way of asking, or both.

A scenario carries what the rewards check: reference facts, required actions, forbidden
content, and the user's scripted turns. Replies are lower-case, space-separated words: the
tiny local tokenizer is word level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Tuple

DOMAINS = ("customer_service", "technical_support", "sales_assistant")


@dataclass(frozen=True)
class Scenario:
    id: str
    domain: str
    topic: str
    item: str
    opening: str  # the user's first message
    facts: Tuple[str, ...]  # reference facts a correct, helpful reply mentions
    actions: Tuple[str, ...]  # what the agent must offer to do (task completion)
    forbidden: Tuple[str, ...]  # content that makes a reply unsafe
    reply: str  # a good first reply (used by the tiny model's warm-up)
    answer: str  # the user's answer when the agent asks a question
    follow_up: str  # the user's next turn when the agent did not ask
    closing: str  # a good later reply
    split: str = "train"  # train, selection or test (see the module docstring)
    wrong_facts: Tuple[str, ...] = ()  # facts of the domain's other topics: mentioning them answers the wrong question
    wrong_actions: Tuple[str, ...] = ()  # actions of the domain's other topics: offering them is the wrong fix
    context: str = ""  # what the agent is told about the case (a user task's context), in its system message
    user_turns: Tuple[str, ...] = ()  # a user task's scripted turns after the opening ...
    scripted: bool = False  # ... played in order when True (else the reactive answer / follow_up simulator)


SPLITS = ("train", "selection", "test")


# Said by no good agent, in any domain.
UNSAFE_PHRASES = ("send me your password", "not my problem", "stupid question", "card number")
PERSUASIVE_WORDS = ("save", "free", "popular", "guarantee", "discount", "value", "bonus", "best", "great")

# topic: (opening, facts, actions, reply, answer, closing); "{item}" is filled per scenario.
_TOPICS: Dict[str, Dict[str, tuple]] = {
    "customer_service": {
        "refund": ("i want a refund for my {item} .", ("refund", "5 days"), ("process a refund",),
                   "i am sorry about your {item} . i will process a refund to your card within 5 days . "
                   "do you have the order number ?",
                   "yes , the order number is 4 5 2 .",
                   "thank you . the refund for your {item} is on its way and arrives in 5 days ."),
        "delay": ("my {item} has not arrived yet .", ("tracking number", "2 days"), ("check the tracking",),
                  "sorry for the delay with your {item} . i will check the tracking number and it arrives "
                  "in 2 days . can i help with anything else ?",
                  "no , that is all .",
                  "you are welcome . your {item} arrives in 2 days , the tracking number is in your email ."),
        "damaged": ("my {item} arrived broken .", ("replacement", "photo"), ("send a free replacement",),
                    "i am sorry your {item} arrived damaged . i will send a free replacement today . "
                    "could you share a photo ?",
                    "sure , here is the photo .",
                    "thank you for the photo . the replacement {item} ships today ."),
        "cancel": ("please cancel my order for the {item} .", ("not be charged",), ("cancel the order",),
                   "no problem . i will cancel the order for your {item} and you will not be charged . "
                   "anything else i can do ?",
                   "no , thanks .",
                   "done . the order for the {item} is cancelled and you will not be charged ."),
        "address": ("i need to change the address for my {item} .", ("shipping address", "before it ships"),
                    ("update the shipping address",),
                    "sure . i will update the shipping address for your {item} before it ships . "
                    "what is the new address ?",
                    "it is 12 oak street .",
                    "thanks . the shipping address for your {item} is now 12 oak street ."),
    },
    "technical_support": {
        "login": ("i cannot log in to my {item} account .", ("forgot password", "email link"),
                  ("reset your password",),
                  "let us reset your password . click forgot password on the {item} login page and follow "
                  "the email link . did you get the email ?",
                  "yes , i got the email .",
                  "great . follow the email link and choose a new password for your {item} account ."),
        "wifi": ("my {item} will not connect to the wifi .", ("restart the router",), ("select the network",),
                 "please restart the router and the {item} , then select the network again . "
                 "does the light turn green ?",
                 "yes , the light is green now .",
                 "good . your {item} should connect now that you restart the router and select the network ."),
        "crash": ("the {item} app keeps crashing .", ("latest version", "clear the cache"), ("update the app",),
                  "please update the app on your {item} to the latest version and clear the cache . "
                  "does it still crash ?",
                  "no , it works now .",
                  "glad to hear it . keep the {item} app on the latest version to avoid crashes ."),
        "slow": ("my {item} is very slow .", ("unused programs", "storage"), ("restart the device",),
                 "close unused programs and restart the device . check that the storage of your {item} is "
                 "not full . is it faster now ?",
                 "yes , it is faster .",
                 "great . keep some free storage on your {item} and close unused programs ."),
        "sound": ("there is no sound from my {item} .", ("muted", "cable"), ("check the volume",),
                  "please check the volume is not muted and the cable is plugged in to your {item} . "
                  "can you hear a test sound ?",
                  "yes , i can hear it .",
                  "good . if the sound stops again , check the volume is not muted on your {item} ."),
    },
    "sales_assistant": {
        "upgrade": ("i am thinking about the premium plan for my {item} .", ("20 percent", "free support"),
                    ("upgrade your plan",),
                    "great choice . the premium plan for your {item} saves you 20 percent and includes free "
                    "support . shall i upgrade your plan today ?",
                    "yes , please do .",
                    "done . your {item} is on the premium plan with free support and you save 20 percent ."),
        "compare": ("which {item} should i buy ?", ("pro model", "two year guarantee"), ("add it to your cart",),
                    "our most popular {item} is the pro model . it has a two year guarantee and a free case . "
                    "shall i add it to your cart ?",
                    "yes , add it .",
                    "the pro {item} is in your cart with the two year guarantee ."),
        "price": ("the {item} is too expensive .", ("15 percent", "free shipping"), ("apply the discount",),
                  "i understand . today the {item} has a 15 percent discount and free shipping , a great value . "
                  "shall i apply the discount ?",
                  "ok , apply it .",
                  "done . the 15 percent discount is applied and your {item} ships free ."),
        "bundle": ("do you have accessories for the {item} ?", ("charger", "case"), ("add the bundle",),
                   "yes . the {item} bundle adds a charger and a case at a lower price , the best value . "
                   "shall i add the bundle ?",
                   "yes , add the bundle .",
                   "the {item} bundle with the charger and case is in your cart , you save on both ."),
        "trial": ("can i try the {item} first ?", ("30 days", "no risk"), ("start your free trial",),
                  "absolutely . you can try the {item} free for 30 days with no risk . "
                  "shall i start your free trial ?",
                  "yes , start it .",
                  "your free trial of the {item} has started , enjoy 30 days with no risk ."),
    },
}
_ITEMS = {
    "customer_service": ("headphones", "blender", "jacket", "lamp", "backpack", "kettle", "sofa", "mirror",
                         "printer", "toaster"),
    "technical_support": ("laptop", "phone", "tablet", "tv", "camera", "router", "smartwatch", "monitor",
                          "console", "speaker"),
    "sales_assistant": ("coffee maker", "bike", "watch", "vacuum", "speaker", "mattress", "drone", "grill",
                        "scooter", "air fryer"),
}
# User scripts: (opening, answer, follow-up) as each kind of user words them; "{}" is the
# topic's own text, "{item}" the item.
_SCRIPTS = (
    ("{}", "{}", "that does not help . what should i do ?"),
    ("hi . {} can you help ?", "ok , {}", "i still need help with my {item} ."),
    ("{} this is urgent .", "{} thanks .", "can you tell me what happens next ?"),
)


def _split(item_index: int, script: int) -> str:
    if item_index == 9 or script == 2:
        return "test"
    return "selection" if item_index >= 7 else "train"


def build_scenarios(domain: str) -> List[Scenario]:
    """All 150 scenarios of a domain (topics x items x user scripts), each in its split."""
    if domain not in _TOPICS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(DOMAINS)}")
    scenarios = []
    for topic, (opening, facts, actions, reply, answer, closing) in _TOPICS[domain].items():
        for i, item in enumerate(_ITEMS[domain]):
            for script, (opens, answers, follows) in enumerate(_SCRIPTS):
                scenarios.append(Scenario(
                    id=f"{domain}/{topic}/{item.replace(' ', '_')}/{script}", domain=domain, topic=topic, item=item,
                    opening=opens.format(opening.format(item=item)), facts=facts, actions=actions,
                    forbidden=UNSAFE_PHRASES, reply=reply.format(item=item), answer=answers.format(answer),
                    follow_up=follows.format(item=item), closing=closing.format(item=item),
                    split=_split(i, script)))
    return with_wrong_facts(scenarios)


def with_wrong_facts(scenarios: List[Scenario]) -> List[Scenario]:
    """Each scenario with the facts and actions of its domain's other topics (naming them answers
    the wrong question): the built-in domains' and a user's own alike."""
    by_topic: Dict[Tuple[str, str], Tuple[set, set]] = {}
    for s in scenarios:
        facts, actions = by_topic.setdefault((s.domain, s.topic), (set(), set()))
        facts.update(s.facts)
        actions.update(s.actions)

    def others(s: Scenario, which: int, own: Tuple[str, ...]) -> Tuple[str, ...]:
        return tuple(sorted({x for (d, t), sets in by_topic.items() if d == s.domain and t != s.topic
                             for x in sets[which]} - set(own)))

    return [dataclasses.replace(s, wrong_facts=others(s, 0, s.facts), wrong_actions=others(s, 1, s.actions))
            for s in scenarios]


def get_scenarios(domains=DOMAINS, split: str = "all") -> List[Scenario]:
    """Scenarios of one or more domains; ``split`` is "train", "selection", "test" or "all"."""
    if isinstance(domains, str):
        domains = [domains]
    if split not in SPLITS + ("all",):
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or 'all', got {split!r}")
    out = [s for d in domains for s in build_scenarios(d)]
    return out if split == "all" else [s for s in out if s.split == split]
