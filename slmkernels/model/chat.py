"""Chat templates: the Jinja2 template in ``tokenizer.chat_template``, rendered sandboxed.

HF chat templates are Jinja2 run in an ``ImmutableSandboxedEnvironment`` with a
``raise_exception`` helper, ``trim_blocks`` and ``lstrip_blocks``, and the variables
``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token`` (transformers'
``apply_chat_template``); we do the same. SmolLM2's template is ChatML.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping, Sequence

from .gguf_reader import GGUFError, GGUFReader, GGUFStringArray, GGUFValueType

__all__ = ["ChatTemplate", "TemplateError", "apply_chat_template"]


class TemplateError(ValueError):
    """The template is invalid, or it refused the messages (its ``raise_exception``)."""


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


class ChatTemplate:
    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        if not isinstance(source, str) or not source:
            raise TemplateError("the chat template is empty")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"], undefined=jinja2.Undefined
        )
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = lambda fmt: date.today().strftime(fmt)
        env.filters.setdefault("tojson", _tojson)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as e:
            raise TemplateError(f"invalid chat template: {e}") from None

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> "ChatTemplate":
        key = "tokenizer.chat_template"
        if key not in reader.metadata:
            raise GGUFError(f"the file has no chat template ({key} is missing)")
        if reader.metadata_types[key] != GGUFValueType.STRING:
            raise GGUFError(f"metadata {key!r} must be a string")
        md = reader.metadata
        tokens = md.get("tokenizer.ggml.tokens")

        def tok(key: str) -> str:
            i = md.get(key)
            if isinstance(i, int) and isinstance(tokens, GGUFStringArray) and 0 <= i < len(tokens):
                return tokens[i]
            return ""

        return cls(md[key], tok("tokenizer.ggml.bos_token_id"), tok("tokenizer.ggml.eos_token_id"))

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        import jinja2

        if isinstance(messages, (str, bytes)) or not all(isinstance(m, Mapping) for m in messages):
            raise TypeError("messages must be a sequence of mappings like {'role': 'user', 'content': '...'}")
        for i, m in enumerate(messages):
            if "role" not in m or "content" not in m:
                raise ValueError(f"messages[{i}] needs 'role' and 'content'")
        try:
            return self._template.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except TemplateError:
            raise
        except jinja2.TemplateError as e:  # includes sandbox SecurityError
            raise TemplateError(f"chat template failed: {e}") from None


def apply_chat_template(
    reader_or_source: GGUFReader | str,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool = True,
    **extra: Any,
) -> str:
    """Render ``messages`` with the file's template (or a template source string)."""
    if isinstance(reader_or_source, str):
        t = ChatTemplate(reader_or_source)
    else:
        t = ChatTemplate.from_gguf(reader_or_source)
    return t.render(messages, add_generation_prompt, **extra)


def _tojson(value: Any, indent: int | None = None) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=indent)
