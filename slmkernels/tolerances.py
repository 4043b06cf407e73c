"""The float tolerances of the kernels, and where each comes from: one definition that the tests
and ``slmkernels bench`` (which validates every kernel before it times it) both use. Integer
paths (quantize, dequantize, GEMM against its scalar twin) have none: they are compared bit for
bit. The GEMM's bound against a float64 product is ``slmkernels.bench.gemm.error_bound``."""

from __future__ import annotations

F32_EPS = 2.0**-24  # unit roundoff of float32

# Attention against a float64 reference on the cache's own (dequantized) contents, relative to
# max|v|: a score's rounding error is at most ~D*u*sum|q_i k_i|*scale (u = 2^-24, sequential
# sum), the online-softmax rescales add a few u relative, and SIMD exp is within 2 ulp. For the
# head dims tested (D <= 256, normal data) that stays far below 1e-4; 2e-4 leaves headroom for
# outliers.
ATTN_TOL = 2e-4

# RMSNorm and SwiGLU, relative: the scalar twin uses libm's expf / sqrtf; SIMD paths reorder the
# sum of squares (4-32 lanes) and use a degree-6 Cephes exp (~2 ulp). Stays below 64 ulp of
# float32 for rows of n <= 8192.
OPS_RTOL = 64 * F32_EPS

# RoPE: float32 rotation of float32 inputs with float32-rounded cos/sin: a few ulps of the row's
# max |x|.
ROPE_RTOL = 4e-7 * 8

# Mamba-2 scans, float32 against float64, relative to the largest |term| a head sums. The
# recurrence's state is a decayed sum (|a_t| <= 1), so rounding does not grow with T; each output
# sums d_state products of the state. Measured over 60 random shapes (T up to 200, d_state up to
# 128): the worst error of an output was 5.6e-6 (token by token) and 4.5e-6 (chunked) of that
# scale; the bound keeps 10x margin.
SSM_RTOL = 2.0**-14
# The chunked scan reassociates the recurrence (decays as running products over a chunk, the
# state's contribution read through Lcum_t * C_t): against the token-by-token kernel, within the
# sum of the two (both are within SSM_RTOL of float64).
SSM_CHUNK_RTOL = 2 * SSM_RTOL
