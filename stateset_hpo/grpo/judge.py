"""`JudgeReward`: a local causal LM as the judge of a reply.

The judge reads the conversation, the reply and a yes/no question, and the score is its
probability of answering "yes" rather than "no" at the first token of its turn: one forward
pass per batch, no text generated or parsed, so the score is deterministic and in [0, 1].
Any model `from_pretrained` loads works (a Hub name or a folder; "tiny" is the locally built
tiny model, which runs offline but whose judgement means little). Each process loads the
judge once and keeps it (the reward travels to Ray workers without it).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from .rewards import Reward, ReplyContext

DEFAULT_QUESTION = "is the agent's reply helpful , correct and polite ? answer yes or no ."
_LOADED: Dict[str, object] = {}  # model name -> its MultiTurnAgent, once per process


class JudgeReward(Reward):
    """``JudgeReward("Qwen/Qwen2.5-0.5B-Instruct", weight=0.3)`` inside a `CompositeReward`.

    ``question`` is asked after the transcript; ``yes`` / ``no`` are the answers compared
    (their first token each); ``batch_size`` replies are judged per forward pass."""

    name = "judge"

    def __init__(self, model: str, question: str = DEFAULT_QUESTION, weight: Optional[float] = None,
                 name: Optional[str] = None, yes: str = "yes", no: str = "no", batch_size: int = 16) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"JudgeReward needs a model name or path, got {model!r}")
        if yes == no:
            raise ValueError(f"JudgeReward's answers must differ, got yes={yes!r} and no={no!r}")
        super().__init__(weight)
        self.model, self.question, self.yes, self.no, self.batch_size = model, question, yes, no, batch_size
        self.name = name or self.name

    def __call__(self, ctx: ReplyContext) -> float:
        return self.batch([ctx])[0]

    def batch(self, contexts: Sequence[ReplyContext]) -> List[float]:
        import torch

        agent = self._judge()
        answers = [self._answer_token(agent.tokenizer, word) for word in (self.yes, self.no)]
        pad = agent.tokenizer.pad_token_id
        scores: List[float] = []
        for start in range(0, len(contexts), self.batch_size):
            prompts = [agent.prompt_ids(self._messages(c)) for c in contexts[start:start + self.batch_size]]
            width = max(len(p) for p in prompts)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=agent.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=agent.device)
            with torch.no_grad():
                logits = agent.model(input_ids=ids, attention_mask=mask).logits[:, -1, answers].float()
            scores += torch.softmax(logits, dim=-1)[:, 0].tolist()
        return scores

    def _messages(self, ctx: ReplyContext) -> List[Dict[str, str]]:
        said = [f"{'agent' if m['role'] == 'assistant' else m['role']} : {m['content']}"
                for m in ctx.history if m["role"] != "system"]
        transcript = " \n".join(said + [f"agent reply : {ctx.reply}"])
        return [{"role": "user", "content": f"{transcript} \n{self.question}"}]

    def _judge(self):
        if self.model not in _LOADED:
            from .agent import MultiTurnAgent
            from .config import AgentConfig

            _LOADED[self.model] = MultiTurnAgent(AgentConfig(model_name=self.model)).initialize()
        return _LOADED[self.model]

    def check(self) -> None:
        """Fail early without the judge's weights (a study's driver may have no room for them):
        the model exists (a folder with config.json, or a name the Hub knows) and its tokenizer
        has a token for each answer (not checked where the Hub cannot be reached). ValueError
        saying what is wrong."""
        from transformers import AutoTokenizer

        from .agent import MultiTurnAgent, hub_model_status
        from .config import AgentConfig

        path = MultiTurnAgent(AgentConfig(model_name=self.model)).model_path()  # a missing folder, an unknown name
        if path == self.model and hub_model_status(self.model).startswith("not verified"):
            return  # the Hub cannot be reached from here: the trials' own download will tell (as for --model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as exc:
            raise ValueError(f"cannot load the judge's tokenizer {self.model!r}: {exc}") from None
        for word in (self.yes, self.no):
            self._answer_token(tokenizer, word)

    @staticmethod
    def _answer_token(tokenizer, word: str) -> int:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids or ids[0] == tokenizer.unk_token_id:
            raise ValueError(f"the judge model's tokenizer has no token for the answer {word!r}")
        return ids[0]

    def __repr__(self) -> str:
        return f"JudgeReward({self.model!r}, weight={self.weight})"
