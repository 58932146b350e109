"""Chat messages for a grounded answer: numbered sources, history and question within a token budget."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docqa import tokens
from docqa.errors import DocqaError
from docqa.types import Hit

# The exact sentence a model is told to use when the sources do not hold the answer; the extractive
# answerer uses it too, so one check (`is_no_answer`) recognises a decline from either provider.
NO_ANSWER = "The documents do not contain an answer to this question."

SYSTEM_PROMPT = f"""You answer questions using only the numbered sources in the user's message.

Rules:
- Use only what the sources say. Do not add outside knowledge and do not guess.
- Cite the source of every statement with its number in square brackets, like [1] or [2][3]. \
Cite only sources that support the statement.
- If the sources do not contain the answer, reply with exactly this sentence and nothing else: \
"{NO_ANSWER}"
- Answer in the language of the question, even when the sources are in another language \
(the sentence above stays in English).
- Be concise."""

# OpenAI's accounting for chat models: every message costs its content plus a few tokens for the
# role and separators (3 on current models, 4 on older ones: we take 4 to stay on the safe side),
# and every reply is primed with 3 more (<|start|>assistant<|message|>).
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3

_ROLES = ("user", "assistant")
_SOURCES_HEADER = "Sources:"
_NO_SOURCES = "No sources were found for this question."
_BLOCK_SEPARATOR = "\n\n"
# Sources are chosen on per-block estimates (concatenated text can tokenize slightly differently
# than its parts); each estimate carries this slack and the finished prompt is counted exactly.
_ESTIMATE_SLACK = 2


@dataclass(frozen=True)
class Prompt:
    """Messages ready for a chat model and what went into them."""

    messages: list[dict]
    sources: list[Hit]         # the hits included, numbered 1..n in this order
    prompt_tokens: int         # as counted by `count_message_tokens(messages)`
    dropped_history: int       # history messages left out (always the oldest)
    dropped_sources: int       # hits left out (always the lowest ranked)


def count_message_tokens(messages: Sequence[dict]) -> int:
    """Tokens `messages` take in a chat request, reply priming included."""
    return sum(MESSAGE_OVERHEAD + tokens.count(m["content"]) for m in messages) + REPLY_PRIMING


def format_pages(page_start: int, page_end: int) -> str:
    """'page 3' or 'pages 3-4'."""
    return f"page {page_start}" if page_start == page_end else f"pages {page_start}-{page_end}"


def source_block(n: int, hit: Hit) -> str:
    """One numbered source as the model sees it: '[n] doc, pages a-b:' then the whole chunk text."""
    c = hit.chunk
    return f"[{n}] {c.doc}, {format_pages(c.page_start, c.page_end)}:\n{c.text}"


def is_no_answer(text: str) -> bool:
    """True when an answer is the decline sentence (the model may vary case and the full stop)."""
    return NO_ANSWER.rstrip(".").casefold() in text.casefold()


def build_messages(question: str, hits: Sequence[Hit], history: Sequence[dict], *,
                   context_window: int, max_answer_tokens: int,
                   system_prompt: str = SYSTEM_PROMPT) -> Prompt:
    """The chat messages for `question`, fitted into `context_window - max_answer_tokens` tokens.

    Layout: the system prompt; then the history turns (user/assistant, oldest first); then one user
    message holding the numbered sources followed by the question.

    Budget policy, in priority order (every message also costs MESSAGE_OVERHEAD, the reply
    REPLY_PRIMING, as OpenAI counts them):
    1. The system prompt and the question always go in; when even they do not fit, a DocqaError
       (400) says how many tokens too long the question is.
    2. Sources in rank order, whole chunks only (a chunk is never cut): the first one that does not
       fit is dropped together with every lower-ranked one, so the sources are always a prefix of
       the ranking and the top source is in whenever it fits.
    3. History with what remains, newest first, a user question and its assistant answer kept or
       dropped together; the first turn that does not fit ends it, so only the oldest are dropped.
    """
    if not question.strip():
        raise DocqaError("The question is empty: send a non-empty question.", code="empty_question")
    turns = _validated(history)
    budget = context_window - max_answer_tokens
    if budget <= 0:
        raise DocqaError(
            f"max_answer_tokens ({max_answer_tokens}) leaves no room in the model's context window "
            f"({context_window} tokens): lower DOCQA_MAX_ANSWER_TOKENS.", code="bad_budget")
    system = {"role": "system", "content": system_prompt}

    base = count_message_tokens([system, _user(question, [])])
    if base > budget:
        over = base - budget
        raise DocqaError(
            f"The question is too long for the model's context window: with the instructions it "
            f"needs {base} tokens but {budget} are available ({context_window} minus "
            f"{max_answer_tokens} reserved for the answer). Shorten it by at least {over} tokens.",
            code="question_too_long", details={"tokens_over": over})
    left = budget - base

    blocks: list[str] = []
    for hit in hits:
        block = source_block(len(blocks) + 1, hit)
        cost = tokens.count(block) + _ESTIMATE_SLACK
        if not blocks:
            cost += tokens.count(_SOURCES_HEADER) - tokens.count(_NO_SOURCES) + _ESTIMATE_SLACK
        if cost > left:
            break
        blocks.append(block)
        left -= cost

    groups = _turn_groups(turns)  # newest first
    kept = 0
    for group in groups:
        cost = sum(MESSAGE_OVERHEAD + tokens.count(m["content"]) for m in group)
        if cost > left:
            break
        kept += 1
        left -= cost

    # The estimates above are close, not exact: count the real thing and give back the
    # lowest-priority part (oldest history, then the lowest-ranked source) until it fits.
    while True:
        included = [m for g in reversed(groups[:kept]) for m in g]
        messages = [system, *included, _user(question, blocks)]
        total = count_message_tokens(messages)
        if total <= budget:
            break
        if kept:
            kept -= 1
        else:
            blocks.pop()  # cannot run dry: system + question alone fit (checked above)

    return Prompt(messages=messages, sources=list(hits[:len(blocks)]), prompt_tokens=total,
                  dropped_history=len(turns) - len(included), dropped_sources=len(hits) - len(blocks))


def _user(question: str, blocks: Sequence[str]) -> dict:
    sources = (_SOURCES_HEADER + _BLOCK_SEPARATOR + _BLOCK_SEPARATOR.join(blocks)) if blocks else _NO_SOURCES
    return {"role": "user", "content": f"{sources}{_BLOCK_SEPARATOR}Question: {question}"}


def _validated(history: Sequence[dict]) -> list[dict]:
    turns = []
    for i, m in enumerate(history):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in _ROLES:
            raise DocqaError(f"history[{i}] has role {role!r}: history turns must have role "
                             f"'user' or 'assistant'.", code="bad_history")
        if not isinstance(m.get("content"), str):
            raise DocqaError(f"history[{i}].content must be a string.", code="bad_history")
        # Only role and content reach the model, so the count is exactly what is sent.
        turns.append({"role": role, "content": m["content"]})
    return turns


def _turn_groups(turns: list[dict]) -> list[list[dict]]:
    """History split into turns, newest first: a user message with the assistant reply after it."""
    groups = []
    i = len(turns) - 1
    while i >= 0:
        if turns[i]["role"] == "assistant" and i > 0 and turns[i - 1]["role"] == "user":
            groups.append(turns[i - 1:i + 1])
            i -= 2
        else:
            groups.append(turns[i:i + 1])
            i -= 1
    return groups
