// The inner loops of every search: int8 and 4-bit dot products and float dot products, with
// runtime dispatch between AVX-512 VNNI, AVX-512 BW, AVX2 and scalar code. The integer kernels
// are exact (no saturation), so every ISA returns bit-identical results; the float ones agree
// to rounding. The tests check each against the scalar reference.
//
// Code formats (chosen so the widest instruction, VNNI's vpdpbusd = u8 × s8, needs no fix-up
// inside the loop):
//   int8 codes are stored "offset binary": u8 = s8 + 128. Σ u8·q = Σ s8·q + 128·Σq, and the
//     correction depends only on the query, so it is subtracted once per query.
//   4-bit codes are packed per block of 64 dimensions in 32 bytes: byte j holds dimension j in
//     its low nibble and dimension 32 + j in its high nibble (so one AND and one shift unpack
//     32 consecutive dimensions).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fv::index::kernels {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };

// The best ISA this CPU supports (FACEVAULT_ISA=scalar|avx2|avx512|avx512vnni lowers it).
Isa detected_isa();
Isa active_isa();
const char* isa_name(Isa isa);
// Tests and benchmarks force an ISA; returns false (and changes nothing) when unsupported.
bool set_isa(Isa isa);

// Σ g[i]·q[i] over `dim` values, g unsigned (offset-binary codes), q signed.
int32_t dot_u8s8(const uint8_t* g, const int8_t* q, size_t dim);
// The same for `n` rows of `dim` bytes (row stride `dim`): out[r] = dot_u8s8(g + r*dim, q).
void dot_u8s8_rows(const uint8_t* g, size_t n, size_t dim, const int8_t* q, int32_t* out);
// `nq` queries (each `dim` values, consecutive) against `n` rows: out[r * nq + j]. Each row is
// read from memory once for all queries: this is what makes batched search cheaper per query.
void dot_u8s8_rows_multi(const uint8_t* g, size_t n, size_t dim, const int8_t* qs, size_t nq, int32_t* out);

// Σ c[i]·q[i] for packed 4-bit codes (dim a multiple of 64, layout above), q signed.
int32_t dot_u4s8(const uint8_t* packed, const int8_t* q, size_t dim);
void dot_u4s8_rows(const uint8_t* packed, size_t n, size_t dim, const int8_t* q, int32_t* out);

float dot_f32(const float* a, const float* b, size_t dim);
// Σ g[i]·q[i], g int16 (the re-rank records), q float: the one kernel here in float
// arithmetic besides dot_f32, so ISAs agree to rounding, not bit for bit.
float dot_s16f32(const int16_t* g, const float* q, size_t dim);

// The graph's 1-bit codes (GraphIndex), `words` 64-bit words each; exact integers on every ISA
// (AVX-512 VPOPCNTDQ where the CPU has it, the popcnt instruction or portable code otherwise).
// out[0] = popcount(code); out[1] = Σ_p 2^p · popcount(code & planes[p·words …]) over the
// query's four bit-planes — the two counts the RaBitQ estimate is made of.
void plane_counts(const uint64_t* code, const uint64_t* planes, size_t words, uint32_t* out);
// popcount(a XOR b): the Hamming distance between two codes.
uint32_t hamming(const uint64_t* a, const uint64_t* b, size_t words);

// Scalar references (tests compare every ISA against these).
int32_t dot_u8s8_ref(const uint8_t* g, const int8_t* q, size_t dim);
int32_t dot_u4s8_ref(const uint8_t* packed, const int8_t* q, size_t dim);
float dot_f32_ref(const float* a, const float* b, size_t dim);
float dot_s16f32_ref(const int16_t* g, const float* q, size_t dim);
void plane_counts_ref(const uint64_t* code, const uint64_t* planes, size_t words, uint32_t* out);
uint32_t hamming_ref(const uint64_t* a, const uint64_t* b, size_t words);

// Symmetric int8 quantisation with one scale per vector: out[i] = round(v[i] / s) in
// [-127, 127], s = max|v| / 127. Returns s (0 for an all-zero vector).
float quantize_s8(const float* v, size_t dim, int8_t* out);
// The same, stored offset-binary (u8 = s8 + 128).
float quantize_u8(const float* v, size_t dim, uint8_t* out);
// The same at 16 bits: out[i] = round(v[i] / s) in [-32767, 32767], s = max|v| / 32767.
float quantize_s16(const float* v, size_t dim, int16_t* out);
// Packs 4-bit values (0..15, one per byte, `dim` of them) into the block layout above.
void pack_u4(const uint8_t* values, size_t dim, uint8_t* packed);
void unpack_u4(const uint8_t* packed, size_t dim, uint8_t* values);

}  // namespace fv::index::kernels
