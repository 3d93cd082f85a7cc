"""Prompt templates for LLM generation, in the data's language, as Jinja templates.

Chat templates are for instruction-tuned models; completion templates (a numbered list the base
model continues) are for base models such as the embedded Gemma-3-270m. Override any of them with
``methods.params.<method>.template`` (a file path or the template text itself).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

TEMPLATES: dict[tuple[str, str, str], str] = {
    (
        "classify",
        "chat",
        "en",
    ): """You write realistic examples for a text classifier{% if domain %} ({{ domain }}){% endif %}.
Label: "{{ label }}"
Examples with this label:
{% for d in demos %}- {{ d }}
{% endfor %}{% if contrasts %}Examples with OTHER labels, not to imitate:
{% for c in contrasts %}- [{{ c.label }}] {{ c.text }}
{% endfor %}{% endif %}
Write {{ n }} new, varied examples with the label "{{ label }}", different from the ones above. Output a numbered list, one example per line, and nothing else.""",
    (
        "classify",
        "chat",
        "zh",
    ): """你负责为文本分类器编写真实的训练样本{% if domain %}（{{ domain }}）{% endif %}。
类别：「{{ label }}」
这个类别的例子：
{% for d in demos %}- {{ d }}
{% endfor %}{% if contrasts %}其他类别的例子（不要模仿）：
{% for c in contrasts %}- [{{ c.label }}] {{ c.text }}
{% endfor %}{% endif %}
请写出 {{ n }} 条新的、互不相同的「{{ label }}」类别的例子，不要重复上面的例子。用编号列表输出，每行一条，不要输出其他内容。""",
    (
        "classify",
        "completion",
        "en",
    ): """Real messages{% if domain %} ({{ domain }}){% endif %} with the label "{{ label }}", one per line:
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}{{ demos|length + 1 }}.""",
    (
        "classify",
        "completion",
        "zh",
    ): """以下是{% if domain %}{{ domain }}中{% endif %}属于「{{ label }}」类别的真实用户消息，每行一条：
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}{{ demos|length + 1 }}.""",
    (
        "instructions",
        "chat",
        "en",
    ): """Here are example task instructions{% if domain %} ({{ domain }}){% endif %}:
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}
Propose {{ n }} new, different task instructions of the same kind. Output a numbered list, one instruction per line. Do not answer them.""",
    ("instructions", "chat", "zh"): """下面是一些任务指令的例子{% if domain %}（{{ domain }}）{% endif %}：
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}
请提出 {{ n }} 条新的、不同的同类任务指令。用编号列表输出，每行一条指令，不要回答这些指令。""",
    ("instructions", "completion", "en"): """Task instructions{% if domain %} ({{ domain }}){% endif %}:
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}{{ demos|length + 1 }}.""",
    ("instructions", "completion", "zh"): """任务指令{% if domain %}（{{ domain }}）{% endif %}：
{% for d in demos %}{{ loop.index }}. {{ d }}
{% endfor %}{{ demos|length + 1 }}.""",
    ("answer", "chat", "en"): """{{ instruction }}{% if input %}

{{ input }}{% endif %}""",
    ("answer", "chat", "zh"): """{{ instruction }}{% if input %}

{{ input }}{% endif %}""",
    ("answer", "completion", "en"): """{% for d in demos %}Instruction: {{ d.instruction }}
Answer: {{ d.output }}

{% endfor %}Instruction: {{ instruction }}
Answer:""",
    ("answer", "completion", "zh"): """{% for d in demos %}指令：{{ d.instruction }}
回答：{{ d.output }}

{% endfor %}指令：{{ instruction }}
回答：""",
    # -- translation (back-translation through an LLM) --
    (
        "translate",
        "chat",
        "en",
    ): """Translate the following {{ src }} text into {{ tgt }}. Reply with the translation only, nothing else.

{{ text }}""",
    (
        "translate",
        "chat",
        "zh",
    ): """请把下面的{{ src }}文本翻译成{{ tgt }}。只输出译文，不要输出其他内容。

{{ text }}""",
    (
        "translate",
        "completion",
        "en",
    ): """{% for a, b in examples %}{{ src }}: {{ a }}
{{ tgt }}: {{ b }}

{% endfor %}{{ src }}: {{ text }}
{{ tgt }}:""",
    (
        "translate",
        "completion",
        "zh",
    ): """{% for a, b in examples %}{{ src }}：{{ a }}
{{ tgt }}：{{ b }}

{% endfor %}{{ src }}：{{ text }}
{{ tgt }}：""",
    # -- paraphrase through an LLM --
    (
        "paraphrase",
        "chat",
        "en",
    ): """Rewrite the following text in different words, keeping its meaning{% if label %} (it is an example of "{{ label }}"){% endif %}{% if domain %} ({{ domain }}){% endif %}. Reply with the rewritten text only, nothing else.

{{ text }}""",
    (
        "paraphrase",
        "chat",
        "zh",
    ): """请用不同的说法改写下面这段话，保持原意不变{% if label %}（它属于「{{ label }}」类别）{% endif %}{% if domain %}（{{ domain }}）{% endif %}。只输出改写后的句子，不要输出其他内容。

{{ text }}""",
    (
        "paraphrase",
        "completion",
        "en",
    ): """Each sentence is followed by a rewording with the same meaning.

Sentence: I lost my bank card yesterday. What should I do?
Rewording: My bank card went missing yesterday; what do I need to do?

Sentence: The patient has had a headache for three days.
Rewording: For the past three days the patient has been suffering from a headache.

Sentence: {{ text }}
Rewording:""",
    (
        "paraphrase",
        "completion",
        "zh",
    ): """每个句子后面是意思相同、说法不同的改写。

原句：我昨天把银行卡弄丢了，该怎么办？
改写：昨天我的银行卡丢了，我需要怎么处理？

原句：病人已经头痛三天了。
改写：这位病人头疼已经持续三天了。

原句：{{ text }}
改写：""",
}
STOPS = {"completion": ("\n\n",), "chat": ()}
ANSWER_STOPS = {"completion": ("\n\n", "\n指令", "\nInstruction"), "chat": ()}


def prompt_language(language: str) -> str:
    return "zh" if language.split("-")[0].lower() == "zh" else "en"


@lru_cache(maxsize=32)
def _compile(text: str):
    """Templates come from config files and ``-P``, which people share: they render in Jinja's
    sandbox, so a template can read the values it is given but cannot reach Python internals
    (``{{ cycler.__init__.__globals__.os }}`` and the like raise a SecurityError)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"prompt template, line {exc.lineno}: {exc.message}") from None


def render(kind: str, mode: str, language: str, override: str | None = None, **values) -> str:
    """Render the template for (kind, chat|completion, language), or an override (path or text)."""
    import jinja2
    from jinja2.sandbox import SecurityError

    if override:
        path = Path(override)
        text = path.read_text(encoding="utf-8") if len(override) < 256 and path.is_file() else override
    else:
        text = TEMPLATES[(kind, mode, prompt_language(language))]
    try:
        return _compile(text).render(**values)
    except SecurityError as exc:
        raise ConfigError(f"prompt template refused: {exc} (templates may only use the values they are given)") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"prompt template: {exc.message}") from None


_NUMBERED = re.compile(r"^\s*(?:\d{1,3}|[一二三四五六七八九十]{1,3})\s*[.)、．:：]\s*(.+?)\s*$")
_BULLET = re.compile(r"^\s*[-*•·]\s+(.+?)\s*$")
_LABEL_PREFIX = re.compile(r"^\[[^\]]{1,40}\]\s*")
_QUOTES = "\"'“”‘’「」『』"


def _clean(item: str) -> str:
    item = _LABEL_PREFIX.sub("", item.strip().replace("**", "").replace("__", ""))
    if len(item) >= 2 and item[0] in _QUOTES and item[-1] in _QUOTES:
        item = item[1:-1].strip()
    return item


def parse_items(raw: str, key: str = "text") -> list[str]:
    """Items from an LLM's list output: JSON lines / a JSON array, a numbered list (1. 1) 1、 一、),
    or a bulleted list; plain lines only when the whole output is plain lines. Empty on failure."""
    import json

    text = raw.strip()
    if not text:
        return []
    items: list[str] = []
    if text.startswith("["):
        try:
            arr = json.loads(text)
            items = [str(x.get(key, "")) if isinstance(x, dict) else str(x) for x in arr]
        except (json.JSONDecodeError, AttributeError):
            items = []
    if not items:
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                    if isinstance(obj, dict) and obj.get(key):
                        items.append(str(obj[key]))
                except json.JSONDecodeError:
                    pass
    if not items:
        items = [m.group(1) for line in text.splitlines() if (m := _NUMBERED.match(line))]
    if not items:
        items = [m.group(1) for line in text.splitlines() if (m := _BULLET.match(line))]
    if not items:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(lines) >= 2 and not any(ln.endswith((":", "：")) for ln in lines):
            items = lines
    out, seen = [], set()
    for item in (_clean(i) for i in items):
        if len(item) >= 2 and item not in seen:
            seen.add(item)
            out.append(item)
    return out

# In-context classification (the ICL baseline, finetune/icl.py): the label set, k demonstrations
# (``demos``: ``{text, label}``, labels already in their display names) and the row to classify. The
# answer is the label's name: scored after the prompt (chat: the opened assistant turn; completion:
# after "Label:" with a leading space in English) or generated and parsed.
TEMPLATES.update(
    {
        (
            "icl",
            "chat",
            "en",
        ): """Classify the text{% if domain %} ({{ domain }}){% endif %} into exactly one of these labels: {{ labels|join(", ") }}.
{% if demos %}
Examples:
{% for d in demos %}Text: {{ d.text }}
Label: {{ d.label }}

{% endfor %}{% endif %}
Text: {{ text }}
Answer with the label only.
Label:""",
        (
            "icl",
            "chat",
            "zh",
        ): """请把下面的文本{% if domain %}（{{ domain }}）{% endif %}归入以下类别之一：{{ labels|join("、") }}。
{% if demos %}
示例：
{% for d in demos %}文本：{{ d.text }}
类别：{{ d.label }}

{% endfor %}{% endif %}
文本：{{ text }}
只回答类别名称。
类别：""",
        (
            "icl",
            "completion",
            "en",
        ): """Texts{% if domain %} ({{ domain }}){% endif %} and their labels ({{ labels|join(", ") }}).

{% for d in demos %}Text: {{ d.text }}
Label: {{ d.label }}

{% endfor %}Text: {{ text }}
Label:""",
        (
            "icl",
            "completion",
            "zh",
        ): """以下是{% if domain %}{{ domain }}中的{% endif %}文本及其类别（{{ labels|join("、") }}）。

{% for d in demos %}文本：{{ d.text }}
类别：{{ d.label }}

{% endfor %}文本：{{ text }}
类别：""",
    }
)
