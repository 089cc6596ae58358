#include "index/kernels.h"

// GCC 12 warns inside its own _mm512_reduce_add_* helpers (an undefined-vector idiom it
// uses on purpose); the warning is about the header, not this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace fv::index::kernels {
namespace {

// ------------------------------------------------------------------ scalar

int32_t u8s8_scalar(const uint8_t* g, const int8_t* q, size_t dim) {
  int32_t s = 0;
  for (size_t i = 0; i < dim; ++i) s += int32_t(g[i]) * int32_t(q[i]);
  return s;
}

int32_t u4s8_scalar(const uint8_t* p, const int8_t* q, size_t dim) {
  int32_t s = 0;
  for (size_t b = 0; b < dim; b += 64, p += 32, q += 64)
    for (size_t j = 0; j < 32; ++j) s += int32_t(p[j] & 15) * q[j] + int32_t(p[j] >> 4) * q[32 + j];
  return s;
}

float f32_scalar(const float* a, const float* b, size_t dim) {
  float s = 0;
  for (size_t i = 0; i < dim; ++i) s += a[i] * b[i];
  return s;
}

float s16f32_scalar(const int16_t* g, const float* q, size_t dim) {
  float s = 0;
  for (size_t i = 0; i < dim; ++i) s += float(g[i]) * q[i];
  return s;
}

void u8s8_rows_scalar(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  for (size_t r = 0; r < n; ++r) out[r] = u8s8_scalar(g + r * dim, q, dim);
}
void u4s8_rows_scalar(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  const size_t row = dim / 2;
  for (size_t r = 0; r < n; ++r) out[r] = u4s8_scalar(g + r * row, q, dim);
}

// ------------------------------------------------------------------ AVX2

#define FV_AVX2 __attribute__((target("avx2,fma")))

FV_AVX2 inline int32_t hsum256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

FV_AVX2 int32_t u8s8_avx2(const uint8_t* g, const int8_t* q, size_t dim) {
  // Widen to int16 and use madd: exact (maddubs would saturate at ±32767).
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m256i g0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + i)));
    __m256i q0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i)));
    __m256i g1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g + i + 16)));
    __m256i q1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i + 16)));
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(g0, q0));
    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(g1, q1));
  }
  int32_t s = hsum256(_mm256_add_epi32(acc0, acc1));
  for (; i < dim; ++i) s += int32_t(g[i]) * q[i];
  return s;
}

FV_AVX2 int32_t u4s8_avx2(const uint8_t* p, const int8_t* q, size_t dim) {
  const __m256i mask = _mm256_set1_epi8(15);
  __m256i acc = _mm256_setzero_si256();
  for (size_t b = 0; b < dim; b += 64, p += 32, q += 64) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i lo = _mm256_and_si256(v, mask);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
#define q16(off) _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + (off))))
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(lo)), q16(0)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(lo, 1)), q16(16)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(hi)), q16(32)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(hi, 1)), q16(48)));
#undef q16
  }
  return hsum256(acc);
}

FV_AVX2 float f32_avx2(const float* a, const float* b, size_t dim) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float r = _mm_cvtss_f32(s);
  for (; i < dim; ++i) r += a[i] * b[i];
  return r;
}

FV_AVX2 float s16f32_avx2(const int16_t* g, const float* q, size_t dim) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + i));
    const __m256 g0 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(w)));
    const __m256 g1 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(w, 1)));
    acc0 = _mm256_fmadd_ps(g0, _mm256_loadu_ps(q + i), acc0);
    acc1 = _mm256_fmadd_ps(g1, _mm256_loadu_ps(q + i + 8), acc1);
  }
  __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float r = _mm_cvtss_f32(s);
  for (; i < dim; ++i) r += float(g[i]) * q[i];
  return r;
}

FV_AVX2 void u8s8_rows_avx2(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  for (size_t r = 0; r < n; ++r) out[r] = u8s8_avx2(g + r * dim, q, dim);
}
FV_AVX2 void u4s8_rows_avx2(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  for (size_t r = 0; r < n; ++r) out[r] = u4s8_avx2(g + r * (dim / 2), q, dim);
}

// ------------------------------------------------------------------ AVX-512 (BW, no VNNI)

#define FV_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma")))

FV_AVX512 int32_t u8s8_avx512(const uint8_t* g, const int8_t* q, size_t dim) {
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m512i g0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g + i)));
    __m512i q0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(g0, q0));
  }
  int32_t s = _mm512_reduce_add_epi32(acc);
  for (; i < dim; ++i) s += int32_t(g[i]) * q[i];
  return s;
}

FV_AVX512 int32_t u4s8_avx512(const uint8_t* p, const int8_t* q, size_t dim) {
  const __m256i mask = _mm256_set1_epi8(15);
  __m512i acc = _mm512_setzero_si512();
  for (size_t b = 0; b < dim; b += 64, p += 32, q += 64) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i lo = _mm256_and_si256(v, mask);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    __m512i qlo = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
    __m512i qhi = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32)));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepu8_epi16(lo), qlo));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepu8_epi16(hi), qhi));
  }
  return _mm512_reduce_add_epi32(acc);
}

FV_AVX512 float f32_avx512(const float* a, const float* b, size_t dim) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  if (i + 16 <= dim) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    i += 16;
  }
  float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; i < dim; ++i) r += a[i] * b[i];
  return r;
}

FV_AVX512 float s16f32_avx512(const int16_t* g, const float* q, size_t dim) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    const __m512i w = _mm512_loadu_si512(g + i);
    const __m512 g0 = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(w)));
    const __m512 g1 = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(w, 1)));
    acc0 = _mm512_fmadd_ps(g0, _mm512_loadu_ps(q + i), acc0);
    acc1 = _mm512_fmadd_ps(g1, _mm512_loadu_ps(q + i + 16), acc1);
  }
  float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; i < dim; ++i) r += float(g[i]) * q[i];
  return r;
}

FV_AVX512 void u8s8_rows_avx512(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  for (size_t r = 0; r < n; ++r) out[r] = u8s8_avx512(g + r * dim, q, dim);
}
FV_AVX512 void u4s8_rows_avx512(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  for (size_t r = 0; r < n; ++r) out[r] = u4s8_avx512(g + r * (dim / 2), q, dim);
}

// ------------------------------------------------------------------ AVX-512 VNNI

#define FV_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,avx2,fma")))

FV_VNNI inline __mmask64 tail_mask(size_t n) { return n >= 64 ? ~0ULL : ((1ULL << n) - 1); }

FV_VNNI int32_t u8s8_vnni(const uint8_t* g, const int8_t* q, size_t dim) {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 128 <= dim; i += 128) {
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(g + i), _mm512_loadu_si512(q + i));
    acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(g + i + 64), _mm512_loadu_si512(q + i + 64));
  }
  for (; i < dim; i += 64) {
    const __mmask64 m = tail_mask(dim - i);
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_maskz_loadu_epi8(m, g + i), _mm512_maskz_loadu_epi8(m, q + i));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

// Four rows at a time: four independent dependency chains keep the VNNI units busy while
// the loads stream in; the query stays in L1.
FV_VNNI void u8s8_rows_vnni(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  size_t r = 0;
  if (dim % 64 == 0) {
    for (; r + 4 <= n; r += 4) {
      const uint8_t* g0 = g + r * dim;
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = 0; i < dim; i += 64) {
        const __m512i qv = _mm512_loadu_si512(q + i);
        a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(g0 + i), qv);
        a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(g0 + dim + i), qv);
        a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512(g0 + 2 * dim + i), qv);
        a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512(g0 + 3 * dim + i), qv);
      }
      out[r] = _mm512_reduce_add_epi32(a0);
      out[r + 1] = _mm512_reduce_add_epi32(a1);
      out[r + 2] = _mm512_reduce_add_epi32(a2);
      out[r + 3] = _mm512_reduce_add_epi32(a3);
    }
  }
  for (; r < n; ++r) out[r] = u8s8_vnni(g + r * dim, q, dim);
}

// The query rearranged once per search so the inner loop is two plain loads per 128
// dimensions: for each pair of 64-dim blocks, [q0..31, q64..95, q32..63, q96..127].
FV_VNNI void permute_u4_query(const int8_t* q, size_t dim, int8_t* out) {
  size_t b = 0;
  for (; b + 128 <= dim; b += 128) {
    std::memcpy(out + b, q + b, 32);
    std::memcpy(out + b + 32, q + b + 64, 32);
    std::memcpy(out + b + 64, q + b + 32, 32);
    std::memcpy(out + b + 96, q + b + 96, 32);
  }
  if (b < dim) std::memcpy(out + b, q + b, 64);
}

FV_VNNI inline int32_t u4s8_vnni_perm(const uint8_t* p, const int8_t* qp, size_t dim) {
  const __m512i mask = _mm512_set1_epi8(15);
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  size_t b = 0;
  for (; b + 128 <= dim; b += 128, p += 64) {
    const __m512i v = _mm512_loadu_si512(p);
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_and_si512(v, mask), _mm512_loadu_si512(qp + b));
    acc1 = _mm512_dpbusd_epi32(acc1, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), _mm512_loadu_si512(qp + b + 64));
  }
  if (b < dim) {  // one 64-dim block left: 32 bytes
    const __m512i v = _mm512_maskz_loadu_epi8(0xffffffffULL, p);
    acc0 = _mm512_dpbusd_epi32(acc0, _mm512_and_si512(v, mask), _mm512_maskz_loadu_epi8(0xffffffffULL, qp + b));
    acc1 = _mm512_dpbusd_epi32(acc1, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask),
                               _mm512_maskz_loadu_epi8(0xffffffffULL, qp + b + 32));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

constexpr size_t kMaxDim = 4096;

FV_VNNI int32_t u4s8_vnni(const uint8_t* p, const int8_t* q, size_t dim) {
  alignas(64) int8_t qp[kMaxDim];
  if (dim > kMaxDim) return u4s8_scalar(p, q, dim);
  permute_u4_query(q, dim, qp);
  return u4s8_vnni_perm(p, qp, dim);
}

// Sixteen vectors of sixteen int32 partial sums → one vector of their sixteen totals (lane i:
// the sum of a[i]). A transposing tree of 15 adds, cheaper per row than sixteen horizontal
// reductions, which cost as much as the dot products of a 128-dim 4-bit code.
FV_VNNI inline __m512i reduce16_epi32(__m512i* a) {
  __m512i b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(b[2 * i], b[2 * i + 1]), _mm512_unpackhi_epi64(b[2 * i], b[2 * i + 1]));
  // c[i], 128-bit lane l: partial sums of rows 4i..4i+3 over that lane's quarter.
  for (int i = 0; i < 2; ++i)
    d[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], 0x88), _mm512_shuffle_i32x4(c[2 * i], c[2 * i + 1], 0xdd));
  // d[i] lanes: rows 8i..8i+3 (quarters 0+1, 2+3), rows 8i+4..8i+7 (the same).
  const __m512i e = _mm512_add_epi32(_mm512_shuffle_i32x4(d[0], d[1], 0x88), _mm512_shuffle_i32x4(d[0], d[1], 0xdd));
  return e;
}

// Sixteen codes of kBlocks·128 dimensions at a time. The row length is a constant here, so
// every load has an immediate offset; with a run-time row (the general loop below) the sixteen
// row addresses no longer fit the registers and are reloaded from the stack inside the loop
// (perf on the 128-dimension codes of face templates, the IVF's default).
template <size_t kBlocks>
FV_VNNI size_t u4s8_rows16_fixed(const uint8_t* g, size_t n, const int8_t* qp, int32_t* out) {
  constexpr size_t row = kBlocks * 64;
  const __m512i mask = _mm512_set1_epi8(15);
  size_t r = 0;
  for (; r + 16 <= n; r += 16) {
    const uint8_t* p = g + r * row;
    __m512i acc[16];
    for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_si512();
    for (size_t b = 0; b < kBlocks; ++b) {
      const __m512i qlo = _mm512_load_si512(qp + b * 128), qhi = _mm512_load_si512(qp + b * 128 + 64);
      for (int k = 0; k < 16; ++k) {
        const __m512i v = _mm512_loadu_si512(p + k * row + b * 64);
        acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_and_si512(v, mask), qlo);
        acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), qhi);
      }
    }
    _mm512_storeu_si512(out + r, reduce16_epi32(acc));
  }
  return r;
}

FV_VNNI void u4s8_rows_vnni(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  alignas(64) int8_t qp[kMaxDim];
  if (dim > kMaxDim) return u4s8_rows_scalar(g, n, dim, q, out);
  permute_u4_query(q, dim, qp);
  const size_t row = dim / 2;
  const __m512i mask = _mm512_set1_epi8(15);
  size_t r = 0;
  if (dim == 128) r = u4s8_rows16_fixed<1>(g, n, qp, out);
  else if (dim == 256) r = u4s8_rows16_fixed<2>(g, n, qp, out);
  else if (dim % 128 == 0) {  // sixteen codes at a time, one tree reduction for all of them
    for (; r + 16 <= n; r += 16) {
      const uint8_t* p = g + r * row;
      __m512i acc[16];
      for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_si512();
      for (size_t b = 0; b < dim; b += 128) {
        const __m512i qlo = _mm512_load_si512(qp + b), qhi = _mm512_load_si512(qp + b + 64);
        const size_t off = b / 2;
        for (int k = 0; k < 16; ++k) {
          const __m512i v = _mm512_loadu_si512(p + k * row + off);
          acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_and_si512(v, mask), qlo);
          acc[k] = _mm512_dpbusd_epi32(acc[k], _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), qhi);
        }
      }
      _mm512_storeu_si512(out + r, reduce16_epi32(acc));
    }
  }
  // Four codes at a time, whole 128-dim blocks only: each query block is loaded once for
  // four rows, and four independent accumulators hide the vpdpbusd latency.
  {
    const size_t full = dim / 128 * 128;
    for (; r + 4 <= n; r += 4) {
      const uint8_t* p = g + r * row;
      __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t b = 0; b < full; b += 128) {
        const __m512i qlo = _mm512_load_si512(qp + b), qhi = _mm512_load_si512(qp + b + 64);
        const size_t off = b / 2;
#define FV_U4_STEP(acc, k)                                                                   \
  {                                                                                          \
    const __m512i v = _mm512_loadu_si512(p + (k) * row + off);                               \
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v, mask), qlo);                          \
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), qhi);   \
  }
        FV_U4_STEP(a0, 0)
        FV_U4_STEP(a1, 1)
        FV_U4_STEP(a2, 2)
        FV_U4_STEP(a3, 3)
#undef FV_U4_STEP
      }
      if (full < dim) {  // a last 64-dim block: 32 bytes per code
        const __mmask64 m32 = 0xffffffffULL;
        const __m512i qlo = _mm512_maskz_loadu_epi8(m32, qp + full), qhi = _mm512_maskz_loadu_epi8(m32, qp + full + 32);
        const size_t off = full / 2;
#define FV_U4_TAIL(acc, k)                                                                   \
  {                                                                                          \
    const __m512i v = _mm512_maskz_loadu_epi8(m32, p + (k) * row + off);                     \
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v, mask), qlo);                          \
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), qhi);   \
  }
        FV_U4_TAIL(a0, 0)
        FV_U4_TAIL(a1, 1)
        FV_U4_TAIL(a2, 2)
        FV_U4_TAIL(a3, 3)
#undef FV_U4_TAIL
      }
      out[r] = _mm512_reduce_add_epi32(a0);
      out[r + 1] = _mm512_reduce_add_epi32(a1);
      out[r + 2] = _mm512_reduce_add_epi32(a2);
      out[r + 3] = _mm512_reduce_add_epi32(a3);
    }
  }
  for (; r < n; ++r) out[r] = u4s8_vnni_perm(g + r * row, qp, dim);
}

// ------------------------------------------------------------------ 1-bit codes

void planes_scalar(const uint64_t* b, const uint64_t* pl, size_t w, uint32_t* c) {
  uint32_t n = 0, s = 0;
  for (size_t i = 0; i < w; ++i) {
    const uint64_t x = b[i];
    n += static_cast<uint32_t>(__builtin_popcountll(x));
    for (int p = 0; p < 4; ++p) s += uint32_t(__builtin_popcountll(x & pl[p * w + i])) << p;
  }
  c[0] = n;
  c[1] = s;
}
uint32_t hamming_scalar(const uint64_t* a, const uint64_t* b, size_t w) {
  uint32_t h = 0;
  for (size_t i = 0; i < w; ++i) h += static_cast<uint32_t>(__builtin_popcountll(a[i] ^ b[i]));
  return h;
}
// The same with the popcnt instruction (every x86-64 since 2008; AVX2 CPUs all have it).
__attribute__((target("popcnt"))) void planes_popcnt(const uint64_t* b, const uint64_t* pl, size_t w, uint32_t* c) {
  uint32_t n = 0, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < w; ++i) {
    const uint64_t x = b[i];
    n += static_cast<uint32_t>(__builtin_popcountll(x));
    s0 += static_cast<uint32_t>(__builtin_popcountll(x & pl[i]));
    s1 += static_cast<uint32_t>(__builtin_popcountll(x & pl[w + i]));
    s2 += static_cast<uint32_t>(__builtin_popcountll(x & pl[2 * w + i]));
    s3 += static_cast<uint32_t>(__builtin_popcountll(x & pl[3 * w + i]));
  }
  c[0] = n;
  c[1] = s0 + 2 * s1 + 4 * s2 + 8 * s3;
}
__attribute__((target("popcnt"))) uint32_t hamming_popcnt(const uint64_t* a, const uint64_t* b, size_t w) {
  uint32_t h = 0;
  for (size_t i = 0; i < w; ++i) h += static_cast<uint32_t>(__builtin_popcountll(a[i] ^ b[i]));
  return h;
}
// Eight words per instruction. Each lane sums the weighted plane counts (≤ 64·15 per block)
// in its low 32 bits and the code's own count in its high 32, so one reduction gives both.
__attribute__((target("avx512f,avx512vpopcntdq"))) void planes_vpopcnt(const uint64_t* b, const uint64_t* pl, size_t w,
                                                                       uint32_t* c) {
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= w; i += 8) {
    const __m512i x = _mm512_loadu_si512(b + i);
    __m512i s = _mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_loadu_si512(pl + i)));
    s = _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_loadu_si512(pl + w + i))), 1));
    s = _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_loadu_si512(pl + 2 * w + i))), 2));
    s = _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_popcnt_epi64(_mm512_and_si512(x, _mm512_loadu_si512(pl + 3 * w + i))), 3));
    acc = _mm512_add_epi64(acc, _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_popcnt_epi64(x), 32)));
  }
  const uint64_t t = static_cast<uint64_t>(_mm512_reduce_add_epi64(acc));
  uint32_t tail[2] = {0, 0};
  if (i < w) {  // fewer than 8 words left: the four planes of the tail are w apart as well
    uint32_t n = 0, s = 0;
    for (; i < w; ++i) {
      n += static_cast<uint32_t>(__builtin_popcountll(b[i]));
      for (int p = 0; p < 4; ++p) s += uint32_t(__builtin_popcountll(b[i] & pl[p * w + i])) << p;
    }
    tail[0] = n;
    tail[1] = s;
  }
  c[0] = static_cast<uint32_t>(t >> 32) + tail[0];
  c[1] = static_cast<uint32_t>(t & 0xFFFFFFFFu) + tail[1];
}
__attribute__((target("avx512f,avx512vpopcntdq"))) uint32_t hamming_vpopcnt(const uint64_t* a, const uint64_t* b, size_t w) {
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= w; i += 8)
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i))));
  uint32_t h = static_cast<uint32_t>(_mm512_reduce_add_epi64(acc));
  for (; i < w; ++i) h += static_cast<uint32_t>(__builtin_popcountll(a[i] ^ b[i]));
  return h;
}
// The scalar level still uses the popcnt instruction where the CPU has it (pre-AVX2 x86-64).
void planes_base(const uint64_t* b, const uint64_t* pl, size_t w, uint32_t* c) {
  static const bool hw = (__builtin_cpu_init(), __builtin_cpu_supports("popcnt"));
  (hw ? planes_popcnt : planes_scalar)(b, pl, w, c);
}
uint32_t hamming_base(const uint64_t* a, const uint64_t* b, size_t w) {
  static const bool hw = (__builtin_cpu_init(), __builtin_cpu_supports("popcnt"));
  return (hw ? hamming_popcnt : hamming_scalar)(a, b, w);
}
// VPOPCNTDQ is its own CPU feature (Ice Lake, Zen 4), not implied by AVX-512 BW or VNNI.
bool have_vpopcnt() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}
void planes_avx512(const uint64_t* b, const uint64_t* pl, size_t w, uint32_t* c) {
  static const bool v = have_vpopcnt();
  (v ? planes_vpopcnt : planes_popcnt)(b, pl, w, c);
}
uint32_t hamming_avx512(const uint64_t* a, const uint64_t* b, size_t w) {
  static const bool v = have_vpopcnt();
  return (v ? hamming_vpopcnt : hamming_popcnt)(a, b, w);
}

// ------------------------------------------------------------------ dispatch

struct Table {
  int32_t (*u8s8)(const uint8_t*, const int8_t*, size_t);
  void (*u8s8_rows)(const uint8_t*, size_t, size_t, const int8_t*, int32_t*);
  int32_t (*u4s8)(const uint8_t*, const int8_t*, size_t);
  void (*u4s8_rows)(const uint8_t*, size_t, size_t, const int8_t*, int32_t*);
  float (*f32)(const float*, const float*, size_t);
  float (*s16f32)(const int16_t*, const float*, size_t);
  void (*planes)(const uint64_t*, const uint64_t*, size_t, uint32_t*);
  uint32_t (*hamming)(const uint64_t*, const uint64_t*, size_t);
};

const Table kTables[] = {
    {u8s8_scalar, u8s8_rows_scalar, u4s8_scalar, u4s8_rows_scalar, f32_scalar, s16f32_scalar, planes_base, hamming_base},
    {u8s8_avx2, u8s8_rows_avx2, u4s8_avx2, u4s8_rows_avx2, f32_avx2, s16f32_avx2, planes_popcnt, hamming_popcnt},
    {u8s8_avx512, u8s8_rows_avx512, u4s8_avx512, u4s8_rows_avx512, f32_avx512, s16f32_avx512, planes_avx512, hamming_avx512},
    {u8s8_vnni, u8s8_rows_vnni, u4s8_vnni, u4s8_rows_vnni, f32_avx512, s16f32_avx512, planes_avx512, hamming_avx512},
};

Isa cpu_isa() {
  __builtin_cpu_init();
  Isa best = Isa::kScalar;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::kAvx2;
  if (best == Isa::kAvx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) best = Isa::kAvx512;
  if (best == Isa::kAvx512 && __builtin_cpu_supports("avx512vnni")) best = Isa::kAvx512Vnni;
  if (const char* env = std::getenv("FACEVAULT_ISA"); env && *env) {
    const std::string e = env;
    Isa want = e == "scalar" ? Isa::kScalar : e == "avx2" ? Isa::kAvx2 : e == "avx512" ? Isa::kAvx512 : Isa::kAvx512Vnni;
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

Isa& detected() {
  static Isa isa = cpu_isa();
  return isa;
}
std::atomic<const Table*>& table() {
  static std::atomic<const Table*> t{&kTables[static_cast<int>(detected())]};
  return t;
}

}  // namespace

Isa detected_isa() { return detected(); }

Isa active_isa() {
  const Table* t = table().load(std::memory_order_relaxed);
  return static_cast<Isa>(t - kTables);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512-vnni";
  }
  return "?";
}

bool set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected())) return false;
  table().store(&kTables[static_cast<int>(isa)]);
  return true;
}

int32_t dot_u8s8(const uint8_t* g, const int8_t* q, size_t dim) { return table().load(std::memory_order_relaxed)->u8s8(g, q, dim); }
void dot_u8s8_rows(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  table().load(std::memory_order_relaxed)->u8s8_rows(g, n, dim, q, out);
}
void dot_u8s8_rows_multi(const uint8_t* g, size_t n, size_t dim, const int8_t* qs, size_t nq, int32_t* out) {
  // Row-major over the gallery: a row is fetched from memory once and then stays in L1 while
  // every query of the batch is scored against it.
  const auto f = table().load(std::memory_order_relaxed)->u8s8;
  for (size_t r = 0; r < n; ++r)
    for (size_t j = 0; j < nq; ++j) out[r * nq + j] = f(g + r * dim, qs + j * dim, dim);
}
int32_t dot_u4s8(const uint8_t* p, const int8_t* q, size_t dim) { return table().load(std::memory_order_relaxed)->u4s8(p, q, dim); }
void dot_u4s8_rows(const uint8_t* p, size_t n, size_t dim, const int8_t* q, int32_t* out) {
  table().load(std::memory_order_relaxed)->u4s8_rows(p, n, dim, q, out);
}
float dot_f32(const float* a, const float* b, size_t dim) { return table().load(std::memory_order_relaxed)->f32(a, b, dim); }

int32_t dot_u8s8_ref(const uint8_t* g, const int8_t* q, size_t dim) { return u8s8_scalar(g, q, dim); }
int32_t dot_u4s8_ref(const uint8_t* p, const int8_t* q, size_t dim) { return u4s8_scalar(p, q, dim); }
float dot_f32_ref(const float* a, const float* b, size_t dim) { return f32_scalar(a, b, dim); }
float dot_s16f32(const int16_t* g, const float* q, size_t dim) { return table().load(std::memory_order_relaxed)->s16f32(g, q, dim); }
float dot_s16f32_ref(const int16_t* g, const float* q, size_t dim) { return s16f32_scalar(g, q, dim); }
void plane_counts(const uint64_t* code, const uint64_t* planes, size_t words, uint32_t* out) {
  table().load(std::memory_order_relaxed)->planes(code, planes, words, out);
}
uint32_t hamming(const uint64_t* a, const uint64_t* b, size_t words) {
  return table().load(std::memory_order_relaxed)->hamming(a, b, words);
}
void plane_counts_ref(const uint64_t* code, const uint64_t* planes, size_t words, uint32_t* out) {
  planes_scalar(code, planes, words, out);
}
uint32_t hamming_ref(const uint64_t* a, const uint64_t* b, size_t words) { return hamming_scalar(a, b, words); }

float quantize_s8(const float* v, size_t dim, int8_t* out) {
  float m = 0;
  for (size_t i = 0; i < dim; ++i) m = std::max(m, std::fabs(v[i]));
  if (m == 0) {
    std::memset(out, 0, dim);
    return 0;
  }
  const float s = m / 127.0f, inv = 127.0f / m;
  for (size_t i = 0; i < dim; ++i) out[i] = static_cast<int8_t>(std::lrint(std::clamp(v[i] * inv, -127.0f, 127.0f)));
  return s;
}

float quantize_u8(const float* v, size_t dim, uint8_t* out) {
  const float s = quantize_s8(v, dim, reinterpret_cast<int8_t*>(out));
  for (size_t i = 0; i < dim; ++i) out[i] = static_cast<uint8_t>(static_cast<int8_t>(out[i]) + 128);
  return s;
}

float quantize_s16(const float* v, size_t dim, int16_t* out) {
  float m = 0;
  for (size_t i = 0; i < dim; ++i) m = std::max(m, std::fabs(v[i]));
  if (m == 0) {
    std::fill(out, out + dim, int16_t(0));
    return 0;
  }
  const float s = m / 32767.0f, inv = 32767.0f / m;
  for (size_t i = 0; i < dim; ++i) out[i] = static_cast<int16_t>(std::lrint(std::clamp(v[i] * inv, -32767.0f, 32767.0f)));
  return s;
}

void pack_u4(const uint8_t* values, size_t dim, uint8_t* packed) {
  for (size_t b = 0; b < dim; b += 64, values += 64, packed += 32)
    for (size_t j = 0; j < 32; ++j) packed[j] = static_cast<uint8_t>((values[j] & 15) | ((values[32 + j] & 15) << 4));
}

void unpack_u4(const uint8_t* packed, size_t dim, uint8_t* values) {
  for (size_t b = 0; b < dim; b += 64, values += 64, packed += 32)
    for (size_t j = 0; j < 32; ++j) {
      values[j] = packed[j] & 15;
      values[32 + j] = packed[j] >> 4;
    }
}

}  // namespace fv::index::kernels
