import enum
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

FormatLike = Union[str, int]
# Activations and out=: a numpy.ndarray, a torch CPU tensor or any __dlpack__ array in CPU memory, float32,
# float16 or bfloat16 (viewed, never copied); a result is a torch tensor for torch input, of the input dtype.
FloatArray = Any

class QuantizedTensor:
    def __init__(self, data: Any, format: FormatLike, shape: tuple[int, int] | int, offset: int = 0) -> None: ...
    @property
    def format(self) -> str: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def block_size(self) -> int: ...
    @property
    def type_size(self) -> int: ...
    @property
    def ggml_type(self) -> int: ...
    @property
    def data(self) -> npt.NDArray[np.uint8]: ...
    @property
    def packed_nbytes(self) -> int: ...
    def drop_packed(self) -> None: ...

def cpu_info() -> dict[str, Any]: ...
def isas() -> list[dict[str, Any]]: ...
def kernels() -> list[dict[str, Any]]: ...
def get_isa() -> str: ...
def set_isa(isa: str) -> None: ...
def act_modes() -> tuple[str, ...]: ...
def get_act_mode() -> str: ...
def set_act_mode(mode: str) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def quantize(x: FloatArray, fmt: FormatLike) -> QuantizedTensor: ...
def dequantize(qt: QuantizedTensor) -> npt.NDArray[np.float32]: ...
def formats() -> dict[str, dict[str, int]]: ...

class PackedWeights:
    @property
    def format(self) -> str: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def nbytes(self) -> int: ...

WeightLike = Union[QuantizedTensor, PackedWeights, FloatArray, npt.NDArray[np.float16]]

def pack(w: WeightLike | Sequence[WeightLike], *, release_pages: bool = False) -> PackedWeights: ...
def matmul(
    x: FloatArray, w: WeightLike, out: FloatArray | None = None
) -> FloatArray: ...
def release_pages(obj: Any) -> int: ...
def release_free_heap() -> bool: ...
def _probe_read_bandwidth(bytes: int, reps: int = 5) -> dict[str, Any]: ...

class _ReadProbe:
    bytes: int
    def __init__(self, bytes: int) -> None: ...
    def measure(self, reps: int = 3) -> dict[str, Any]: ...
def _probe_peak(kind: str, seconds: float = 0.2) -> dict[str, Any]: ...

# ---- KV cache and attention (bind_kvcache.cpp) ----
class KVCacheFullError(RuntimeError): ...
class KVCacheFileError(ValueError): ...

class KVCache:
    def __init__(
        self,
        n_layers: int,
        n_kv_heads: int,
        head_dim: int,
        *,
        capacity_tokens: int,
        block_tokens: int = 32,
        dtype: str = "f16",
        layer_windows: list[int | None] | None = None,
        recurrent_layers: int = 0,
        recurrent_state_floats: int = 0,
        max_snapshots: int = 8,
        snapshot_interval: int = 0,
    ) -> None: ...
    @property
    def recurrent_layers(self) -> int: ...
    @property
    def recurrent_state_floats(self) -> int: ...
    @property
    def max_snapshots(self) -> int: ...
    @property
    def snapshot_interval(self) -> int: ...
    def recurrent_state(self, seq: int, layer: int) -> npt.NDArray[np.float32]: ...
    def set_recurrent_state(self, seq: int, layer: int, value: npt.NDArray[np.float32]) -> None: ...
    def snapshot(self, seq: int) -> None: ...
    def add_snapshot(self, seq: int, position: int, state: npt.NDArray[np.float32]) -> None: ...
    def snapshot_positions(self, seq: int) -> list[int]: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def n_kv_heads(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def block_tokens(self) -> int: ...
    @property
    def dtype(self) -> str: ...
    @property
    def layer_windows(self) -> list[int]: ...
    @property
    def capacity_tokens(self) -> int: ...
    def new_sequence(self) -> int: ...
    def extend(self, seq: int, n_tokens: int) -> None: ...
    def extend_batch(self, seqs: list[int]) -> None: ...
    def write(self, layer: int, seq: int, k: FloatArray, v: FloatArray) -> None: ...
    def append(self, layer: int, seq: int, k: FloatArray, v: FloatArray) -> None: ...
    def fork(self, seq: int) -> int: ...
    def truncate(self, seq: int, n_tokens: int) -> None: ...
    def free(self, seq: int) -> None: ...
    def evict(self, seq: int, *, n_sink: int, window: int) -> None: ...
    def length(self, seq: int) -> int: ...
    def keys(self, layer: int, seq: int) -> FloatArray: ...
    def values(self, layer: int, seq: int) -> FloatArray: ...
    def positions(self, layer: int, seq: int) -> npt.NDArray[np.int64]: ...
    def sequences(self) -> list[int]: ...
    def stats(self) -> dict[str, int]: ...
    def save(self, seq: int, path: Any) -> None: ...
    def restore(self, path: Any) -> int: ...
    def _block_table(self, layer: int, seq: int) -> list[tuple[int, int, int, int]]: ...
    def _refcount(self, block: int) -> int: ...

def attention(
    q: FloatArray,
    cache: KVCache,
    layer: int,
    seq: int,
    *,
    scale: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
    sinks: FloatArray | None = None,
    out: FloatArray | None = None,
) -> FloatArray: ...
def attention_dense(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    *,
    scale: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
    sinks: FloatArray | None = None,
    out: FloatArray | None = None,
) -> FloatArray: ...
def attention_batch(
    q: FloatArray,
    cache: KVCache,
    layer: int,
    seqs: list[int],
    *,
    scale: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
    sinks: FloatArray | None = None,
    out: FloatArray | None = None,
) -> FloatArray: ...
def attention_kernel_names() -> dict[str, str]: ...
def rope(
    x: FloatArray,
    positions: npt.NDArray[np.integer[Any]],
    *,
    theta: float,
    mode: str,
    rotary_dim: int | None = None,
    scaling: dict[str, Any] | None = None,
    freq_factors: FloatArray | None = None,
    out: FloatArray | None = None,
) -> FloatArray: ...
def rmsnorm(
    x: FloatArray, w: FloatArray, eps: float, out: FloatArray | None = None
) -> FloatArray: ...
def swiglu(
    gate: FloatArray, up: FloatArray, out: FloatArray | None = None
) -> FloatArray: ...
def geglu(
    gate: FloatArray, up: FloatArray, out: FloatArray | None = None
) -> FloatArray: ...
def reglu(
    gate: FloatArray, up: FloatArray, out: FloatArray | None = None
) -> FloatArray: ...
def embedding(
    table: QuantizedTensor, ids: npt.NDArray[np.integer[Any]], out: FloatArray | None = None
) -> FloatArray: ...
def ssm_conv1d(
    x: npt.NDArray[np.float32],
    state: npt.NDArray[np.float32],
    w: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32] | None = None,
    *,
    silu: bool = True,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...
def ssm_scan(
    x: npt.NDArray[np.float32],
    dt: npt.NDArray[np.float32],
    A: npt.NDArray[np.float32],
    B: npt.NDArray[np.float32],
    C: npt.NDArray[np.float32],
    D: npt.NDArray[np.float32],
    dt_bias: npt.NDArray[np.float32],
    state: npt.NDArray[np.float32],
    *,
    chunked: bool = False,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...
def ssm_gated_rmsnorm(
    y: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    w: npt.NDArray[np.float32],
    n_groups: int,
    eps: float,
    *,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]: ...

class RopeMode(enum.Enum):
    normal = ...
    neox = ...

class RopeScaling(enum.Enum):
    none = ...
    linear = ...
    yarn = ...
    llama3 = ...
    longrope = ...

class LayerKind(enum.Enum):
    attention = ...
    mamba2 = ...

class FfnActivation(enum.Enum):
    silu = ...
    gelu_tanh = ...
    relu = ...

class RopeSpec:
    """A layer's RoPE: base, rotary dims, pairing and context scaling."""

    base: float
    rotary_dim: int
    mode: RopeMode
    scaling: RopeScaling
    factor: float
    original_context: float
    ext_factor: float
    attn_factor: float
    beta_fast: float
    beta_slow: float
    low_freq_factor: float
    high_freq_factor: float
    freq_factors: list[float]
    long_factors: list[float]
    def __init__(self) -> None: ...

class AttentionSpec:
    """A layer's attention: heads, RoPE (or NoPE), window, scale."""

    n_heads: int
    n_kv_heads: int
    head_dim: int
    rope: bool
    rope_spec: RopeSpec
    window: int
    scale: float
    softcap: float
    def __init__(self) -> None: ...

class Mamba2Spec:
    """A layer's Mamba-2 mixer: SSM heads, state size, groups, conv taps."""

    n_heads: int
    head_dim: int
    d_state: int
    n_groups: int
    d_conv: int
    @property
    def d_inner(self) -> int: ...
    @property
    def conv_dim(self) -> int: ...
    @property
    def d_in_proj(self) -> int: ...
    @property
    def state_floats(self) -> int: ...
    def __init__(self) -> None: ...

class LayerSpec:
    """One layer of the step: its kind and hyperparameters."""

    kind: LayerKind
    attention: AttentionSpec
    mamba2: Mamba2Spec
    ffn: int
    activation: FfnActivation
    def __init__(self) -> None: ...

class LayerSpecList(list[LayerSpec]): ...

class ModelSpec:
    """The whole step: model-wide scales and one LayerSpec per layer."""

    hidden: int
    vocab: int
    eps: float
    embedding_scale: float
    residual_scale: float
    logit_scale: float
    final_logit_softcap: float
    ssm_chunked_prefill: bool
    layers: LayerSpecList | list[LayerSpec]
    def __init__(self) -> None: ...

class LayerWeights:
    """One layer's weights (None: the layer has no such tensor)."""

    attn_norm: npt.NDArray[np.float32] | None
    q_norm: npt.NDArray[np.float32] | None
    k_norm: npt.NDArray[np.float32] | None
    qkv: list[PackedWeights]
    qkv_bias: npt.NDArray[np.float32] | None
    wo: PackedWeights | None
    wo_bias: npt.NDArray[np.float32] | None
    post_attention_norm: npt.NDArray[np.float32] | None
    ssm_in: PackedWeights | None
    ssm_conv1d: npt.NDArray[np.float32] | None
    ssm_conv1d_bias: npt.NDArray[np.float32] | None
    ssm_dt_bias: npt.NDArray[np.float32] | None
    ssm_a: npt.NDArray[np.float32] | None
    ssm_d: npt.NDArray[np.float32] | None
    ssm_norm: npt.NDArray[np.float32] | None
    ssm_out: PackedWeights | None
    ffn_norm: npt.NDArray[np.float32] | None
    gate_up: list[PackedWeights]
    gate_up_bias: npt.NDArray[np.float32] | None
    down: PackedWeights | None
    down_bias: npt.NDArray[np.float32] | None
    post_ffn_norm: npt.NDArray[np.float32] | None
    def __init__(self) -> None: ...

class Transformer:
    """A decoder whose whole step runs in C++ (built by slmkernels.Model)."""

    def __init__(
        self,
        spec: ModelSpec,
        layers: list[LayerWeights],
        out_norm: Any,
        head: PackedWeights,
        head_bias: Any | None,
        embd: QuantizedTensor,
        n_ctx: int,
    ) -> None: ...
    @property
    def spec(self) -> ModelSpec: ...
    @property
    def n_attention_layers(self) -> int: ...
    @property
    def n_recurrent_layers(self) -> int: ...
    @property
    def state_floats(self) -> int: ...
    def forward(
        self, cache: KVCache, seq: int, ids: npt.NDArray[np.integer[Any]], all_logits: bool = False
    ) -> npt.NDArray[np.float32]: ...
    def forward_batch(
        self, cache: KVCache, seqs: npt.NDArray[np.integer[Any]], ids: npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.float32]: ...

class Sampler:
    """The next-token sampler of one generation (chain and order: csrc/sample/sample.h)."""

    def __init__(
        self,
        vocab: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        typical_p: float = 1.0,
        repetition_penalty: float = 1.0,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        logit_bias: dict[int, float] = ...,
    ) -> None: ...
    @property
    def vocab(self) -> int: ...
    def add_context(self, ids: npt.NDArray[np.integer[Any]]) -> None: ...
    def accept(self, token: int) -> None: ...
    def sample(self, logits: npt.NDArray[np.float32], u: float = 0.0) -> int: ...

def token_logprobs(
    logits: npt.NDArray[np.float32], token: int, k: int = 0
) -> tuple[float, list[tuple[int, float]]]: ...
