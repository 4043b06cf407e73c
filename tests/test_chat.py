"""Chat templates from GGUF metadata, rendered in a Jinja2 sandbox."""

from __future__ import annotations

import pytest

pytest.importorskip("jinja2")
gguf = pytest.importorskip("gguf")

from slmkernels.model import ChatTemplate, GGUFError, GGUFReader, apply_chat_template  # noqa: E402
from slmkernels.model.chat import TemplateError  # noqa: E402
from tiny_models import write_tiny_model  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a haiku about the sea."}]


@pytest.mark.model
def test_smollm2_chatml(smollm2_path):
    with GGUFReader(smollm2_path) as r:
        t = ChatTemplate.from_gguf(r)
    assert (t.bos_token, t.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert t.render(MESSAGES) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}] + MESSAGES
    out = t.render(with_system, add_generation_prompt=False)
    assert out == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n"


@pytest.mark.model
def test_smollm2_chat_prompt_tokenizes_with_specials(smollm2_path):
    from slmkernels.model import Tokenizer

    with GGUFReader(smollm2_path) as r:
        prompt = apply_chat_template(r, MESSAGES)
        tok = Tokenizer.from_gguf(r)
    ids = tok.encode(prompt)
    assert ids.count(1) == 3 and ids.count(2) == 2  # <|im_start|> x3, <|im_end|> x2


def test_tiny_template_from_file(tmp_path):
    with GGUFReader(write_tiny_model(tmp_path / "m.gguf")) as r:
        out = apply_chat_template(r, MESSAGES)
    assert out == "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n"


def test_bos_eos_and_raise_exception():
    src = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
        "{{ raise_exception('bad role ' + m['role']) }}{% endif %}{{ m['content'] + eos_token }}{% endfor %}"
    )
    t = ChatTemplate(src, bos_token="<s>", eos_token="</s>")
    assert t.render([{"role": "user", "content": "hi"}]) == "<s>hi</s>"
    with pytest.raises(TemplateError, match="bad role tool"):
        t.render([{"role": "tool", "content": "x"}])


def test_loop_controls_and_strftime():
    t = ChatTemplate("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m['content'] }}{% endfor %}")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "a"
    assert len(ChatTemplate("{{ strftime_now('%Y') }}").render([])) == 4


def test_sandbox_blocks_attribute_escape():
    t = ChatTemplate("{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        t.render(MESSAGES)


def test_sandbox_is_immutable():
    t = ChatTemplate("{% set x = messages.append({'role': 'x', 'content': 'y'}) %}{{ messages|length }}")
    with pytest.raises(TemplateError):
        t.render(MESSAGES)


def test_invalid_template_and_messages():
    with pytest.raises(TemplateError, match="invalid chat template"):
        ChatTemplate("{% for %}")
    t = ChatTemplate("{{ messages[0]['content'] }}")
    with pytest.raises(ValueError, match="needs 'role' and 'content'"):
        t.render([{"role": "user"}])
    with pytest.raises(TypeError):
        t.render("hello")


def test_missing_template_is_clear(tmp_path):
    p = write_tiny_model(tmp_path / "m.gguf", skip_keys=("tokenizer.chat_template",))
    with GGUFReader(p) as r, pytest.raises(GGUFError, match="no chat template"):
        ChatTemplate.from_gguf(r)
