"""Model loading and text: a strict GGUF reader, the model config, tokenizer and chat template.

    from slmkernels.model import GGUFReader, ModelConfig, Tokenizer, ChatTemplate

    with GGUFReader("SmolLM2-135M-Instruct.Q4_1.gguf") as r:    # validated, mmap'd, no copy
        cfg = ModelConfig.from_gguf(r)                          # checked against the tensors
        tok = Tokenizer.from_gguf(r)                            # agrees with llama.cpp's ids
        prompt = ChatTemplate.from_gguf(r).render([{"role": "user", "content": "Hi"}])
        w = r.tensor("blk.0.attn_q.weight")                     # QuantizedTensor view of the map

Every problem with a file is a :class:`GGUFError` (a ``ValueError``) naming what is wrong and
where (key, tensor name, byte offset).
"""

from .chat import ChatTemplate, TemplateError, apply_chat_template
from .config import ModelConfig
from .gguf_reader import GGUFError, GGUFReader, TensorInfo
from .generate import Generation, GenerationStats, SamplingParams, Token
from .runtime import Model
from .tokenizer import StreamDecoder, Tokenizer

__all__ = [
    "ChatTemplate",
    "GGUFError",
    "GGUFReader",
    "Generation",
    "GenerationStats",
    "Model",
    "ModelConfig",
    "SamplingParams",
    "StreamDecoder",
    "TemplateError",
    "TensorInfo",
    "Token",
    "Tokenizer",
    "apply_chat_template",
]
