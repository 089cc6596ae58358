// The vector index: SIMD kernels against scalar, exact and IVF search, the purpose filter
// inside the search, physical removal, encrypted persistence (save → load, byte scan).
#include <sys/stat.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "bench/harness/index_harness.h"
#include "bench/harness/synthetic.h"
#include "index/index.h"
#include "index/kernels.h"

namespace fv::index {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("fv_index_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A clustered synthetic gallery (see synthetic.h): n templates of dimension d.
std::vector<float> gallery(size_t n, size_t d, uint64_t seed = 7) {
  std::vector<float> v(n * d);
  SyntheticGallery({n, d, 0.85f, seed, nullptr}).generate(0, n, v.data());
  return v;
}

std::vector<Id> iota_ids(size_t n, Id first = 0) {
  std::vector<Id> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

std::span<const float> row(const std::vector<float>& v, size_t i, size_t d) { return {v.data() + i * d, d}; }

// n unit templates on a random `rank`-dimensional subspace of d, the variance of its r-th axis
// falling as 1 / (1 + r / decay): how face templates fill their space.
std::vector<float> on_subspace(size_t n, size_t d, size_t rank, float decay, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> basis(rank * d), out(n * d, 0.0f);
  for (auto& x : basis) x = g(rng);
  for (size_t i = 0; i < n; ++i) {
    float* v = out.data() + i * d;
    for (size_t r = 0; r < rank; ++r) {
      const float c = g(rng) / std::sqrt(1.0f + float(r) / decay);
      for (size_t j = 0; j < d; ++j) v[j] += c * basis[r * d + j];
    }
    float nrm = 0;
    for (size_t j = 0; j < d; ++j) nrm += v[j] * v[j];
    for (size_t j = 0; j < d; ++j) v[j] /= std::sqrt(nrm);
  }
  return out;
}

// Float32 brute force: the truth the indexes are compared with.
SearchResult brute(const std::vector<float>& v, size_t d, std::span<const float> q, size_t k) {
  TopK top(k);
  for (size_t i = 0; i < v.size() / d; ++i) top.push(kernels::dot_f32_ref(v.data() + i * d, q.data(), d), static_cast<Id>(i));
  return top.result();
}

std::vector<kernels::Isa> supported_isas() {
  std::vector<kernels::Isa> out;
  for (int i = 0; i <= static_cast<int>(kernels::detected_isa()); ++i) out.push_back(static_cast<kernels::Isa>(i));
  return out;
}

struct IsaGuard {
  kernels::Isa saved = kernels::active_isa();
  ~IsaGuard() { kernels::set_isa(saved); }
};

// ------------------------------------------------------------------ kernels

TEST(Kernels, EveryIsaAgreesWithScalar) {
  IsaGuard guard;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127), u4(0, 15);
  std::uniform_real_distribution<float> f(-1, 1);
  for (kernels::Isa isa : supported_isas()) {
    ASSERT_TRUE(kernels::set_isa(isa));
    SCOPED_TRACE(kernels::isa_name(isa));
    for (size_t dim : {1, 17, 64, 100, 128, 255, 512, 513, 1024}) {
      const size_t n = 37;
      std::vector<uint8_t> g(n * dim);
      std::vector<int8_t> q(dim * 3);
      for (auto& x : g) x = static_cast<uint8_t>(u8(rng));
      for (auto& x : q) x = static_cast<int8_t>(s8(rng));
      // Extremes too: the widest products must not saturate anywhere.
      if (dim >= 2) { g[0] = 255; q[0] = -127; g[1] = 255; q[1] = 127; }
      std::vector<int32_t> rows(n), multi(n * 3);
      kernels::dot_u8s8_rows(g.data(), n, dim, q.data(), rows.data());
      kernels::dot_u8s8_rows_multi(g.data(), n, dim, q.data(), 3, multi.data());
      for (size_t r = 0; r < n; ++r) {
        const int32_t ref = kernels::dot_u8s8_ref(g.data() + r * dim, q.data(), dim);
        ASSERT_EQ(kernels::dot_u8s8(g.data() + r * dim, q.data(), dim), ref) << "dim " << dim;
        ASSERT_EQ(rows[r], ref) << "dim " << dim << " row " << r;
        for (size_t j = 0; j < 3; ++j)
          ASSERT_EQ(multi[r * 3 + j], kernels::dot_u8s8_ref(g.data() + r * dim, q.data() + j * dim, dim));
      }
      std::vector<float> a(dim), b(dim);
      for (size_t i = 0; i < dim; ++i) { a[i] = f(rng); b[i] = f(rng); }
      EXPECT_NEAR(kernels::dot_f32(a.data(), b.data(), dim), kernels::dot_f32_ref(a.data(), b.data(), dim), 1e-4 * dim);
      std::vector<int16_t> g16(dim);
      for (auto& x : g16) x = static_cast<int16_t>(u8(rng) * 257 - 32767);
      g16[0] = -32767;
      EXPECT_NEAR(kernels::dot_s16f32(g16.data(), a.data(), dim), kernels::dot_s16f32_ref(g16.data(), a.data(), dim), 1e-6 * 32767 * dim);
    }
    for (size_t dim : {64, 128, 192, 256, 448, 512, 1024}) {
      const size_t n = 37;  // two blocks of sixteen rows (the VNNI kernel's unit) and a remainder
      std::vector<uint8_t> vals(dim), packed(n * dim / 2), back(dim);
      std::vector<int8_t> q(dim);
      for (auto& x : q) x = static_cast<int8_t>(s8(rng));
      for (size_t r = 0; r < n; ++r) {
        for (auto& x : vals) x = static_cast<uint8_t>(u4(rng));
        kernels::pack_u4(vals.data(), dim, packed.data() + r * dim / 2);
        kernels::unpack_u4(packed.data() + r * dim / 2, dim, back.data());
        ASSERT_EQ(vals, back);
        int32_t plain = 0;
        for (size_t i = 0; i < dim; ++i) plain += int32_t(vals[i]) * q[i];
        ASSERT_EQ(kernels::dot_u4s8_ref(packed.data() + r * dim / 2, q.data(), dim), plain);
        ASSERT_EQ(kernels::dot_u4s8(packed.data() + r * dim / 2, q.data(), dim), plain) << "dim " << dim;
      }
      std::vector<int32_t> rows(n);
      kernels::dot_u4s8_rows(packed.data(), n, dim, q.data(), rows.data());
      for (size_t r = 0; r < n; ++r) ASSERT_EQ(rows[r], kernels::dot_u4s8_ref(packed.data() + r * dim / 2, q.data(), dim));
    }
    // The graph's 1-bit codes: counts against four bit-planes, and Hamming distances, with
    // whole 8-word blocks and tails (words 1 … 17), all-ones codes included.
    std::mt19937_64 r64(5);
    for (size_t words : {1, 3, 7, 8, 9, 16, 17}) {
      std::vector<uint64_t> code(words), other(words), planes(4 * words);
      for (int trial = 0; trial < 20; ++trial) {
        for (auto& x : code) x = trial == 0 ? ~uint64_t(0) : r64();
        for (auto& x : other) x = r64();
        for (auto& x : planes) x = trial == 0 ? ~uint64_t(0) : r64();
        // By hand: popcount of the code, and Σ_p 2^p · popcount(code & plane p).
        uint32_t n = 0, s = 0;
        for (size_t i = 0; i < words; ++i)
          for (int bit = 0; bit < 64; ++bit) {
            if (!(code[i] >> bit & 1)) continue;
            ++n;
            for (int p = 0; p < 4; ++p) s += uint32_t(planes[p * words + i] >> bit & 1) << p;
          }
        uint32_t ref[2], got[2];
        kernels::plane_counts_ref(code.data(), planes.data(), words, ref);
        kernels::plane_counts(code.data(), planes.data(), words, got);
        ASSERT_EQ(ref[0], n);
        ASSERT_EQ(ref[1], s);
        ASSERT_EQ(got[0], n) << "words " << words;
        ASSERT_EQ(got[1], s) << "words " << words;
        uint32_t h = 0;
        for (size_t i = 0; i < words; ++i) h += static_cast<uint32_t>(std::bitset<64>(code[i] ^ other[i]).count());
        ASSERT_EQ(kernels::hamming_ref(code.data(), other.data(), words), h);
        ASSERT_EQ(kernels::hamming(code.data(), other.data(), words), h) << "words " << words;
      }
    }
  }
}

TEST(Kernels, Int8QuantisationKeepsCosine) {
  const size_t d = 512;
  auto v = gallery(200, d);
  double worst = 0;
  for (size_t i = 0; i + 1 < 200; ++i) {
    std::vector<uint8_t> a(d);
    std::vector<int8_t> b(d);
    const float sa = kernels::quantize_u8(v.data() + i * d, d, a.data());
    const float sb = kernels::quantize_s8(v.data() + (i + 1) * d, d, b.data());
    int32_t sum = 0;
    for (auto x : b) sum += x;
    const double approx = double(kernels::dot_u8s8(a.data(), b.data(), d) - 128 * sum) * sa * sb;
    worst = std::max(worst, std::fabs(approx - kernels::dot_f32_ref(v.data() + i * d, v.data() + (i + 1) * d, d)));
  }
  EXPECT_LT(worst, 0.01);
}

// The approximate indexes re-rank from 16-bit records: the score error must be far below the
// gap between a probe's 10th and 11th neighbours (int8 records erred ~4e-4 and capped recall@10
// against float32 at 0.9945 on LFW probes).
TEST(RerankRecord, ScoresAtFloat32Precision) {
  const size_t d = 512;
  auto v = gallery(200, d);
  std::vector<int16_t> rec(RerankRecord::values(d));
  ASSERT_EQ(RerankRecord::bytes(d), 2 * d + 4);
  double worst = 0;
  for (size_t i = 0; i + 1 < 200; ++i) {
    RerankRecord::encode(v.data() + i * d, d, rec.data());
    const double approx = RerankRecord::score(rec.data(), v.data() + (i + 1) * d, d);
    worst = std::max(worst, std::fabs(approx - kernels::dot_f32_ref(v.data() + i * d, v.data() + (i + 1) * d, d)));
  }
  EXPECT_LT(worst, 2e-5);
}

TEST(TopK, KeepsBestAndBreaksTiesBySmallerId) {
  TopK t(3);
  for (Id id : {5, 1, 9, 3}) t.push(0.5f, id);
  t.push(0.7f, 42);
  auto r = t.result();
  EXPECT_EQ(r.ids, (std::vector<Id>{42, 1, 3}));
}

// ------------------------------------------------------------------ both implementations

struct Built {
  std::unique_ptr<VectorIndex> idx;
  std::vector<float> v;
  size_t d;
};

Built build(const std::string& kind, size_t n, size_t d, const fs::path& store = {}) {
  Built b{nullptr, gallery(n, d), d};
  IndexOptions o;
  o.kind = kind;
  o.ivf.nlist = 64;
  o.ivf.nprobe = 16;
  o.ivf.rerank = 100;
  o.ivf.store_path = store;
  o.graph.store_path = store;
  auto ids = iota_ids(n);
  auto r = build_index(o, d, ids, b.v);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (r.is_ok()) b.idx = std::move(r).value();
  return b;
}

class BothKinds : public ::testing::TestWithParam<std::string> {};

TEST_P(BothKinds, FindsItselfAndAgreesWithFloatBruteForce) {
  auto b = build(GetParam(), 6000, 256);
  ASSERT_TRUE(b.idx);
  EXPECT_EQ(b.idx->size(), 6000u);
  double overlap = 0;
  const size_t nq = 60;
  for (size_t i = 0; i < nq; ++i) {
    const size_t qi = i * 97;
    auto r = b.idx->search(row(b.v, qi, b.d), 10);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->ids.size(), 10u);
    EXPECT_EQ(r->ids[0], static_cast<Id>(qi));
    EXPECT_NEAR(r->scores[0], 1.0, 0.02);
    EXPECT_TRUE(std::is_sorted(r->scores.rbegin(), r->scores.rend()));
    auto t = brute(b.v, b.d, row(b.v, qi, b.d), 10);
    // Rank 1..k among clustered identities; the ties at noise level are what can differ.
    size_t hit = 0;
    for (Id id : t.ids) hit += std::count(r->ids.begin(), r->ids.end(), id);
    overlap += hit / 10.0;
  }
  EXPECT_GT(overlap / nq, GetParam() == "exact" ? 0.9 : 0.6);
}

TEST_P(BothKinds, RejectsBadInput) {
  auto b = build(GetParam(), 3000, 128);
  ASSERT_TRUE(b.idx);
  std::vector<float> one(b.v.begin(), b.v.begin() + 128);
  EXPECT_EQ(b.idx->add(std::vector<Id>{5}, one).code(), StatusCode::kInvalidArgument);        // present
  EXPECT_EQ(b.idx->add(std::vector<Id>{9001, 9001}, b.v).code(), StatusCode::kInvalidArgument);  // sizes
  EXPECT_EQ(b.idx->search(std::vector<float>(64, 0.f), 5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b.idx->size(), 3000u);
}

TEST_P(BothKinds, RemovedIdNeverReturns) {
  auto b = build(GetParam(), 4000, 128);
  ASSERT_TRUE(b.idx);
  std::vector<Id> gone;
  for (Id i = 0; i < 4000; i += 7) gone.push_back(i);
  auto rm = b.idx->remove(gone);
  ASSERT_TRUE(rm.is_ok());
  EXPECT_EQ(*rm, gone.size());
  EXPECT_EQ(b.idx->size(), 4000 - gone.size());
  // Removing again is a no-op (erasure is idempotent).
  EXPECT_EQ(*b.idx->remove(gone), 0u);
  const std::set<Id> g(gone.begin(), gone.end());
  for (Id i : gone) {
    EXPECT_FALSE(b.idx->contains(i));
    // Its own vector as the query, asking for everything: it must not come back.
    auto r = b.idx->search(row(b.v, static_cast<size_t>(i), b.d), i % 70 == 0 ? 4000 : 20);
    ASSERT_TRUE(r.is_ok());
    for (Id id : r->ids) ASSERT_FALSE(g.count(id)) << "removed id " << id << " returned";
  }
  // The remaining ones are still found.
  for (Id i = 1; i < 4000; i += 211) {
    if (g.count(i)) continue;
    auto r = b.idx->search(row(b.v, static_cast<size_t>(i), b.d), 1);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->ids.at(0), i);
  }
  // Re-adding an erased id (re-enrollment) works.
  EXPECT_TRUE(b.idx->add(std::vector<Id>{0}, std::vector<float>(row(b.v, 0, b.d).begin(), row(b.v, 0, b.d).end())).is_ok());
}

TEST_P(BothKinds, PurposeFilterNeverLeaksAndStillReturnsK) {
  auto b = build(GetParam(), 5000, 128);
  ASSERT_TRUE(b.idx);
  for (size_t qi : {3, 1007, 2512, 3020, 4040}) {
    auto unfiltered = b.idx->search(row(b.v, qi, b.d), 20);
    ASSERT_TRUE(unfiltered.is_ok());
    // Purpose A covers ids ≡ 0 (mod 50) outside the query's unfiltered top-20: every one of
    // the nearest candidates belongs to another purpose.
    const std::set<Id> near(unfiltered->ids.begin(), unfiltered->ids.end());
    FunctionFilter only_a([&](Id id) { return id % 50 == 0 && !near.count(id); });
    size_t eligible = 0;
    for (Id id = 0; id < 5000; id += 50) eligible += !near.count(id);
    auto r = b.idx->search(row(b.v, qi, b.d), 10, &only_a);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->ids.size(), 10u) << "k eligible candidates must come back";
    for (Id id : r->ids) EXPECT_TRUE(only_a.allowed(id)) << "id " << id << " of another purpose leaked";
    // Asking for more than exist returns exactly the eligible ones.
    auto all = b.idx->search(row(b.v, qi, b.d), 500, &only_a);
    ASSERT_TRUE(all.is_ok());
    EXPECT_EQ(all->ids.size(), eligible);
    for (Id id : all->ids) EXPECT_TRUE(only_a.allowed(id));
  }
  FunctionFilter nobody([](Id) { return false; });
  auto none = b.idx->search(row(b.v, 0, b.d), 10, &nobody);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->ids.empty());
}

TEST_P(BothKinds, ThreadsAndBatchesGiveTheSameAnswers) {
  auto b = build(GetParam(), 8000, 128);
  ASSERT_TRUE(b.idx);
  std::vector<float> qs;
  for (size_t i = 0; i < 40; ++i) qs.insert(qs.end(), row(b.v, i * 131, b.d).begin(), row(b.v, i * 131, b.d).end());
  FunctionFilter odd([](Id id) { return id % 2 == 1; });
  for (const IdFilter* f : {static_cast<const IdFilter*>(nullptr), static_cast<const IdFilter*>(&odd)}) {
    b.idx->set_threads(1);
    std::vector<SearchResult> one;
    for (size_t i = 0; i < 40; ++i) one.push_back(*b.idx->search(row(qs, i, b.d), 10, f));
    b.idx->set_threads(2);
    auto batch = b.idx->search_batch(qs, 10, f);
    ASSERT_TRUE(batch.is_ok());
    for (size_t i = 0; i < 40; ++i) {
      auto two = b.idx->search(row(qs, i, b.d), 10, f);
      ASSERT_TRUE(two.is_ok());
      EXPECT_EQ(two->ids, one[i].ids) << "query " << i;
      EXPECT_EQ((*batch)[i].ids, one[i].ids) << "query " << i;
    }
  }
}

TEST_P(BothKinds, SaveLoadGivesIdenticalResultsAndNoPlaintextOnDisk) {
  const fs::path dir = temp_dir("save_" + GetParam());
  auto b = build(GetParam(), 3000, 256, GetParam() != "exact" ? dir / "rerank.bin" : fs::path());
  ASSERT_TRUE(b.idx);
  ASSERT_TRUE(b.idx->remove(std::vector<Id>{3, 4, 5}).is_ok());
  const IndexKey key = IndexKey::random();
  const fs::path file = dir / "gallery.fvidx";
  ASSERT_TRUE(b.idx->save(file, key).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "index files are private (0600)";
  auto loaded = load_index(file, key);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->kind(), GetParam());
  EXPECT_EQ((*loaded)->size(), b.idx->size());
  FunctionFilter even([](Id id) { return id % 2 == 0; });
  for (size_t i = 0; i < 3000; i += 101) {
    auto x = b.idx->search(row(b.v, i, b.d), 10, i % 2 ? &even : nullptr);
    auto y = (*loaded)->search(row(b.v, i, b.d), 10, i % 2 ? &even : nullptr);
    ASSERT_TRUE(x.is_ok() && y.is_ok());
    EXPECT_EQ(x->ids, y->ids);
    EXPECT_EQ(x->scores, y->scores);
  }
  EXPECT_FALSE((*loaded)->contains(4));

  // Byte scan: neither the float32 templates nor their int8 codes or 16-bit re-rank records appear in any file the
  // index wrote (the saved file, and the IVF's re-rank store).
  std::vector<std::string> files = {slurp(file)};
  if (fs::exists(dir / "rerank.bin")) files.push_back(slurp(dir / "rerank.bin"));
  for (size_t i = 0; i < 3000; i += 37) {
    const std::string f32(reinterpret_cast<const char*>(b.v.data() + i * b.d) + 64, 32);
    std::vector<uint8_t> code(b.d);
    kernels::quantize_u8(b.v.data() + i * b.d, b.d, code.data());
    const std::string c8(reinterpret_cast<const char*>(code.data()) + 32, 24);
    std::vector<int16_t> code16(b.d);
    kernels::quantize_s16(b.v.data() + i * b.d, b.d, code16.data());
    const std::string c16(reinterpret_cast<const char*>(code16.data()) + 64, 32);
    for (const auto& bytes : files) {
      ASSERT_EQ(bytes.find(f32), std::string::npos) << "float template " << i << " in plaintext";
      ASSERT_EQ(bytes.find(c8), std::string::npos) << "int8 code of template " << i << " in plaintext";
      ASSERT_EQ(bytes.find(c16), std::string::npos) << "16-bit record of template " << i << " in plaintext";
    }
  }
  // Wrong key, flipped byte, truncation: refused, never garbage.
  EXPECT_EQ(load_index(file, IndexKey::random()).status().code(), StatusCode::kCorruptData);
  std::string bytes = slurp(file);
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(dir / "flipped.fvidx", std::ios::binary) << bytes;
  EXPECT_EQ(load_index(dir / "flipped.fvidx", key).status().code(), StatusCode::kCorruptData);
  std::ofstream(dir / "short.fvidx", std::ios::binary) << slurp(file).substr(0, bytes.size() - 100);
  EXPECT_EQ(load_index(dir / "short.fvidx", key).status().code(), StatusCode::kCorruptData);
  b.idx.reset();
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Index, BothKinds, ::testing::Values("exact", "ivf", "hnsw"));

// The approximate indexes re-rank at float32 precision: 400 templates whose cosines to the
// query are 0.5 + i·2e-5 (a spacing int8 records cannot resolve) come back in exactly the
// float32 order once every one of them is a candidate.
TEST(ApproximateKinds, ReRankKeepsTheFloat32OrderOfNearTies) {
  const size_t d = 512, n = 400;
  std::vector<float> q = gallery(1, d, 7), v(n * d);
  auto rest = gallery(n, d, 8);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  for (size_t i = 0; i < n; ++i) {
    float* x = v.data() + i * d;
    const float* r = rest.data() + i * d;
    const float rq = kernels::dot_f32_ref(r, q.data(), d);  // r minus its part along q, normalised
    double nn = 0;
    for (size_t j = 0; j < d; ++j) nn += double(r[j] - rq * q[j]) * (r[j] - rq * q[j]);
    const double a = 0.5 + double(order[i]) * 2e-5, b = std::sqrt(1 - a * a) / std::sqrt(nn);
    for (size_t j = 0; j < d; ++j) x[j] = static_cast<float>(a * q[j] + b * (r[j] - rq * q[j]));
  }
  std::vector<std::pair<float, Id>> truth(n);
  for (size_t i = 0; i < n; ++i) truth[i] = {-kernels::dot_f32_ref(v.data() + i * d, q.data(), d), Id(i)};
  std::sort(truth.begin(), truth.end());
  for (const std::string kind : {"ivf", "hnsw"}) {
    SCOPED_TRACE(kind);
    IndexOptions o;
    o.kind = kind;
    o.ivf.nlist = 4;
    o.ivf.nprobe = 4;
    o.ivf.rerank = n;
    o.graph.ef_search = n;
    o.graph.rerank = n;
    auto ids = iota_ids(n);
    auto idx = build_index(o, d, ids, v);
    ASSERT_TRUE(idx.is_ok()) << idx.status().to_string();
    auto r = (*idx)->search(q, 10);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->ids.size(), 10u);
    for (size_t i = 0; i < 10; ++i) EXPECT_EQ(r->ids[i], truth[i].second) << "rank " << i;
  }
}

// ------------------------------------------------------------------ removal is physical

TEST(ExactIndex, RemovalOverwritesTheCodeInMemory) {
  const size_t d = 128, n = 500;
  auto v = gallery(n, d);
  ExactIndex idx(d);
  ASSERT_TRUE(idx.add(iota_ids(n), v).is_ok());
  std::vector<uint8_t> code(d);
  kernels::quantize_u8(v.data() + 123 * d, d, code.data());
  auto in_buffer = [&] {
    const uint8_t* p = idx.code_data();
    return std::search(p, p + idx.code_capacity_bytes(), code.begin(), code.end()) != p + idx.code_capacity_bytes();
  };
  ASSERT_TRUE(in_buffer());
  ASSERT_EQ(*idx.remove(std::vector<Id>{123}), 1u);
  EXPECT_FALSE(in_buffer()) << "the removed template's bytes are still in the index's memory";
  // The last row (moved into the hole) is zeroed at its old place too: removing every
  // template leaves nothing but zeros.
  std::vector<Id> rest;
  for (Id i = 0; i < static_cast<Id>(n); ++i) if (i != 123) rest.push_back(i);
  ASSERT_EQ(*idx.remove(rest), n - 1);
  const uint8_t* p = idx.code_data();
  EXPECT_TRUE(std::all_of(p, p + idx.code_capacity_bytes(), [](uint8_t b) { return b == 0; }));
}

TEST(IvfIndex, ReRankStoreIsEncryptedAndErasedOnDisk) {
  const fs::path dir = temp_dir("store");
  const size_t d = 128, n = 3000;
  auto v = gallery(n, d);
  IvfOptions o;
  o.nlist = 32;
  o.store_path = dir / "rerank.bin";
  auto holder = std::make_unique<IvfIndex>(d, o);
  IvfIndex& idx = *holder;
  ASSERT_TRUE(idx.train(v).is_ok());
  ASSERT_TRUE(idx.add(iota_ids(n), v).is_ok());
  const auto before = slurp(dir / "rerank.bin");
  EXPECT_EQ(idx.stats().disk_bytes, before.size());
  ASSERT_EQ(*idx.remove(std::vector<Id>{10, 11}), 2u);
  const auto after = slurp(dir / "rerank.bin");
  // Two records are now all zeros on disk (and the file was fdatasync'ed before remove returned).
  const size_t rec = before.size() / n;
  size_t zero_records = 0;
  for (size_t r = 0; r < n; ++r)
    if (std::all_of(after.begin() + r * rec, after.begin() + (r + 1) * rec, [](char c) { return c == 0; })) ++zero_records;
  EXPECT_EQ(zero_records, 2u);
  for (Id id : {10, 11}) {
    auto r = idx.search(row(v, static_cast<size_t>(id), d), 50);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(std::count(r->ids.begin(), r->ids.end(), id), 0);
  }
  // The store file dies with the index.
  holder.reset();
  EXPECT_FALSE(fs::exists(dir / "rerank.bin"));
  fs::remove_all(dir);
}

// The IVF packs its cells into one allocation (IvfIndex::shrink): a buffer placed there keeps
// its contents, shrinks in place, and on growing moves out and wipes the region it leaves.
TEST(SecureBuffer, PlacedBufferGrowsOutAndWipesWhatItLeft) {
  std::vector<uint8_t> arena(64, 0xEE);
  SecureBuffer<uint8_t> b;
  const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7, 8};
  b.append(data, 8);
  b.place_in(arena.data() + 8);
  ASSERT_EQ(b.data(), arena.data() + 8);
  EXPECT_EQ(std::vector<uint8_t>(arena.begin() + 8, arena.begin() + 16), std::vector<uint8_t>(data, data + 8));
  b.resize(6);  // shrinking stays in place and wipes the tail
  EXPECT_EQ(b.data(), arena.data() + 8);
  EXPECT_EQ(arena[14], 0);
  EXPECT_EQ(arena[15], 0);
  b.push_back(9);  // within the placed capacity
  b.push_back(10);
  EXPECT_EQ(b.data(), arena.data() + 8);
  b.push_back(11);  // beyond it: moves out
  ASSERT_NE(b.data(), arena.data() + 8);
  EXPECT_EQ(std::vector<uint8_t>(b.data(), b.data() + b.size()), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 9, 10, 11}));
  for (size_t i = 8; i < 16; ++i) EXPECT_EQ(arena[i], 0) << "byte " << i << " left behind";
  EXPECT_EQ(arena[7], 0xEE);  // the neighbours are not touched
  EXPECT_EQ(arena[16], 0xEE);
}

// Adds one at a time after a bulk load and shrink(), removals, then a save and reload: nothing
// may be lost or mixed up on the way. Every template stays its own nearest neighbour, removals
// stay removed, and the reloaded index answers the same and takes adds again.
TEST(IvfIndex, SingleAddsAfterABulkLoadRemovalsAndReloadKeepEveryTemplate) {
  const size_t d = 128, bulk = 3000, single = 1500;
  auto v = gallery(bulk + single, d, 11);
  IvfOptions o;
  o.nlist = 16;
  o.nprobe = 16;  // every cell: any miss is a layout error, not an approximation
  IvfIndex idx(d, o);
  ASSERT_TRUE(idx.train(std::span<const float>(v.data(), bulk * d)).is_ok());
  ASSERT_TRUE(idx.add(iota_ids(bulk), std::span<const float>(v.data(), bulk * d)).is_ok());
  idx.shrink();  // cells at their exact size: every single add below grows one
  const size_t mem_before = idx.stats().memory_bytes;
  for (size_t i = bulk; i < bulk + single; ++i) {
    const Id id = static_cast<Id>(i);
    ASSERT_TRUE(idx.add(std::span<const Id>(&id, 1), row(v, i, d)).is_ok());
  }
  EXPECT_GT(idx.stats().memory_bytes, mem_before);
  ASSERT_EQ(idx.size(), bulk + single);
  std::vector<Id> gone = {0, 1234, bulk, bulk + single - 1};
  ASSERT_EQ(*idx.remove(gone), gone.size());
  auto own_nearest = [&](const IvfIndex& x) {
    size_t found = 0;
    for (size_t i = 0; i < bulk + single; ++i) {
      auto r = x.search(row(v, i, d), 1);
      EXPECT_TRUE(r.is_ok());
      const bool removed = std::find(gone.begin(), gone.end(), static_cast<Id>(i)) != gone.end();
      if (removed) {
        EXPECT_TRUE(r->ids.empty() || r->ids[0] != static_cast<Id>(i)) << "removed " << i << " came back";
      } else {
        found += !r->ids.empty() && r->ids[0] == static_cast<Id>(i);
      }
    }
    return found;
  };
  EXPECT_EQ(own_nearest(idx), bulk + single - gone.size());
  // Packed again while most cells live in their own buffers and some still in the first
  // packing: nothing is lost or moved to the wrong cell.
  idx.shrink();
  EXPECT_EQ(own_nearest(idx), bulk + single - gone.size());
  const fs::path dir = fs::temp_directory_path() / ("fv-ivf-slack-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const IndexKey key = IndexKey::random();
  ASSERT_TRUE(idx.save(dir / "ivf.fvidx", key).is_ok());
  auto loaded = load_index(dir / "ivf.fvidx", key);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  auto* back = dynamic_cast<IvfIndex*>(loaded->get());
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(own_nearest(*back), bulk + single - gone.size());
  const Id again = 0;  // a removed id may be added again, into the reloaded layout
  ASSERT_TRUE(back->add(std::span<const Id>(&again, 1), row(v, 0, d)).is_ok());
  auto r = back->search(row(v, 0, d), 1);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->ids.size(), 1u);
  EXPECT_EQ(r->ids[0], 0u);
  // A file saved at the default nprobe (0) scans the default share of the cells once loaded.
  IvfOptions od;
  od.nlist = 16;
  IvfIndex dflt(d, od);
  ASSERT_TRUE(dflt.train(std::span<const float>(v.data(), bulk * d)).is_ok());
  ASSERT_TRUE(dflt.add(iota_ids(bulk), std::span<const float>(v.data(), bulk * d)).is_ok());
  EXPECT_EQ(dflt.nprobe(), 8u);
  ASSERT_TRUE(dflt.save(dir / "dflt.fvidx", key).is_ok());
  auto dl = load_index(dir / "dflt.fvidx", key);
  ASSERT_TRUE(dl.is_ok()) << dl.status().to_string();
  EXPECT_EQ(dynamic_cast<IvfIndex&>(**dl).nprobe(), 8u) << "half of 16 cells";
  fs::remove_all(dir);
}

TEST(IvfIndex, ScansMoreCellsWhenTheFilterLeavesTooFew) {
  const size_t d = 128, n = 6000;
  auto v = gallery(n, d);
  IvfOptions o;
  o.nlist = 128;
  o.nprobe = 2;
  IvfIndex idx(d, o);
  ASSERT_TRUE(idx.train(v).is_ok());
  ASSERT_TRUE(idx.add(iota_ids(n), v).is_ok());
  FunctionFilter rare([](Id id) { return id % 1000 == 999; });  // 6 eligible in the gallery
  auto r = idx.search(row(v, 0, d), 10, &rare);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->ids.size(), 6u);
  for (Id id : r->ids) EXPECT_EQ(id % 1000, 999);
}

TEST(IvfIndex, CodeDimensionFollowsTheVarianceOfTheSample) {
  const size_t d = 512, n = 4000, rank = 100;
  // Templates on a 100-dimensional subspace with decaying variance (as face templates are)
  // need 128 code dimensions for 97 % of it; isotropic ones keep dim·7/8 = 448.
  const auto low = on_subspace(n, d, rank, 10.0f, 3);
  IvfOptions o;
  o.nlist = 32;
  o.nprobe = 32;
  IvfIndex face_like(d, o);
  ASSERT_TRUE(face_like.train(low).is_ok());
  ASSERT_TRUE(face_like.add(iota_ids(n), low).is_ok());
  EXPECT_EQ(face_like.stats().scan_bytes_per_item, 128u / 2);
  for (size_t i : {0u, 1234u, 3999u}) {
    auto r = face_like.search(row(low, i, d), 1);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->ids.size(), 1u);
    EXPECT_EQ(r->ids[0], static_cast<Id>(i));
  }
  IvfIndex isotropic(d, o);
  ASSERT_TRUE(isotropic.train(gallery(n, d)).is_ok());
  EXPECT_EQ(isotropic.stats().scan_bytes_per_item, 448u / 2);
  // 300 isotropic rows hold all their variance on 300 axes: too few to judge, dim·7/8 kept.
  IvfIndex small_sample(d, o);
  ASSERT_TRUE(small_sample.train(gallery(300, d)).is_ok());
  EXPECT_EQ(small_sample.stats().scan_bytes_per_item, 448u / 2);
  o.code_dim = 256;  // given: kept as given
  IvfIndex fixed(d, o);
  ASSERT_TRUE(fixed.train(low).is_ok());
  EXPECT_EQ(fixed.stats().scan_bytes_per_item, 256u / 2);
}

TEST(IvfIndex, UntrainedIndexRefusesAdd) {
  IvfIndex idx(128, {});
  std::vector<float> v(128, 0.1f);
  EXPECT_EQ(idx.add(std::vector<Id>{1}, v).code(), StatusCode::kFailedPrecondition);
}

// ------------------------------------------------------------------ the graph

std::unique_ptr<GraphIndex> graph(size_t d, const fs::path& store = {}) {
  GraphOptions o;
  o.store_path = store;
  auto g = GraphIndex::create(d, o);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  return g.is_ok() ? std::move(g).value() : nullptr;
}

TEST(GraphIndex, RemovalOverwritesTheCodeAndReusesTheSlot) {
  const size_t d = 128, n = 2000;
  auto v = gallery(n, d);
  auto g = graph(d);
  ASSERT_TRUE(g && g->add(iota_ids(n), v).is_ok());
  // The code of template 123, as a one-node graph with the same seed computes it.
  auto one = graph(d);
  ASSERT_TRUE(one && one->add(std::vector<Id>{123}, std::vector<float>(row(v, 123, d).begin(), row(v, 123, d).end())).is_ok());
  const std::vector<uint64_t> code(one->code_memory().begin(), one->code_memory().begin() + one->code_words());
  auto in_memory = [&] {
    auto m = g->code_memory();
    for (size_t r = 0; r + code.size() <= m.size(); r += code.size())
      if (std::equal(code.begin(), code.end(), m.begin() + r)) return true;
    return false;
  };
  ASSERT_TRUE(in_memory());
  ASSERT_EQ(*g->remove(std::vector<Id>{123}), 1u);
  EXPECT_FALSE(in_memory()) << "the removed template's code is still in the graph's memory";
  EXPECT_TRUE(g->check().is_ok()) << g->check().to_string();
  // The next add takes the freed node: the arrays do not grow.
  const size_t before = g->code_memory().size();
  std::vector<float> extra(d);
  SyntheticGallery({n + 1, d, 0.85f, 99, nullptr}).generate(n, n + 1, extra.data());
  ASSERT_TRUE(g->add(std::vector<Id>{5000}, extra).is_ok());
  EXPECT_EQ(g->code_memory().size(), before);
  EXPECT_EQ(g->size(), n);
  auto r = g->search(extra, 1);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->ids.at(0), 5000);
  EXPECT_TRUE(g->check().is_ok());
  // A hub's code is also in the hubs' copy: removing the hub overwrites both.
  const size_t w = g->code_words();
  ASSERT_GE(g->hub_code_memory().size(), w) << "2,000 nodes at m 16 hold ~8 hubs";
  const std::vector<uint64_t> hub(g->hub_code_memory().begin(), g->hub_code_memory().begin() + w);
  auto holds = [&](std::span<const uint64_t> m) {
    for (size_t r = 0; r + w <= m.size(); r += w)
      if (std::equal(hub.begin(), hub.end(), m.begin() + r)) return true;
    return false;
  };
  // Its node: the row of the codes that holds it. Nodes were filled in id order by the one
  // bulk add, except node 123, which id 5000 took over above.
  Id hub_id = -1;
  const auto codes = g->code_memory();
  for (size_t r = 0; r * w < codes.size() && hub_id < 0; ++r)
    if (std::equal(hub.begin(), hub.end(), codes.begin() + r * w)) hub_id = r == 123 ? 5000 : static_cast<Id>(r);
  ASSERT_GE(hub_id, 0);
  ASSERT_EQ(*g->remove(std::vector<Id>{hub_id}), 1u);
  EXPECT_FALSE(holds(g->hub_code_memory())) << "the removed hub's code is still in the hubs' copy";
  EXPECT_FALSE(holds(g->code_memory()));
  EXPECT_TRUE(g->check().is_ok()) << g->check().to_string();
}

TEST(GraphIndex, RemovingMostOfTheGalleryKeepsEveryRemainingTemplateFindable) {
  const size_t d = 128, n = 6000;
  auto v = gallery(n, d);
  auto g = graph(d);
  ASSERT_TRUE(g && g->add(iota_ids(n), v).is_ok());
  std::set<Id> gone;
  // Three rounds, whole neighbourhoods at a time (a clustered identity's photos are adjacent
  // ids), until 70 % is gone.
  for (int round = 0; round < 3; ++round) {
    std::vector<Id> batch;
    for (Id i = round; i < static_cast<Id>(n); i += 100)
      for (Id j = i; j < std::min<Id>(i + 23 + round, static_cast<Id>(n)); ++j)
        if (!gone.count(j)) batch.push_back(j);
    ASSERT_EQ(*g->remove(batch), batch.size());
    gone.insert(batch.begin(), batch.end());
    ASSERT_TRUE(g->check().is_ok()) << "round " << round << ": " << g->check().to_string();
  }
  ASSERT_EQ(g->size(), n - gone.size());
  size_t found = 0, asked = 0;
  for (Id i = 0; i < static_cast<Id>(n); ++i) {
    if (gone.count(i)) continue;
    ++asked;
    auto r = g->search(row(v, static_cast<size_t>(i), d), 1);
    ASSERT_TRUE(r.is_ok());
    found += !r->ids.empty() && r->ids[0] == i;
  }
  EXPECT_GE(double(found) / double(asked), 0.995) << found << " of " << asked;
}

// Two threads insert into one graph (striped node locks; run under ThreadSanitizer by
// `make test-tsan`): the graph is consistent and as good as one built by one thread.
TEST(GraphIndex, TwoThreadsBuildAConsistentGraph) {
  const size_t d = 128, n = 8000;
  auto v = gallery(n, d);
  GraphOptions o;
  o.threads = 2;
  auto g = GraphIndex::create(d, o);
  ASSERT_TRUE(g.is_ok());
  // Several adds, the first into an empty graph, later ones into a populated one.
  for (size_t b = 0; b < n; b += 2000) {
    std::vector<float> part(v.begin() + b * d, v.begin() + (b + 2000) * d);
    ASSERT_TRUE((*g)->add(iota_ids(2000, static_cast<Id>(b)), part).is_ok());
  }
  ASSERT_TRUE((*g)->check().is_ok()) << (*g)->check().to_string();
  EXPECT_EQ((*g)->size(), n);
  size_t found = 0;
  for (size_t i = 0; i < n; i += 13) {
    auto r = (*g)->search(row(v, i, d), 1);
    ASSERT_TRUE(r.is_ok());
    found += !r->ids.empty() && r->ids[0] == static_cast<Id>(i);
  }
  EXPECT_GE(double(found) / double((n + 12) / 13), 0.995);
}

// A population enrolled after the rest and unlike it (real faces after a gallery of random
// vectors: the scale benchmark's LFW templates) is a small region that greedy routing from the
// top rarely enters; the hubs (every node on level ≥ 2, all scored) seed the search inside it.
TEST(GraphIndex, FindsAPopulationEnrolledLateInItsOwnRegion) {
  const size_t d = 128, n = 60000, people = 600, sub = 24;
  auto v = gallery(n, d);
  std::mt19937_64 rng(21);
  std::normal_distribution<float> g;
  std::vector<float> enrolled(people * d, 0.0f), probes(people * d, 0.0f);
  for (size_t p = 0; p < people; ++p) {  // faces: a 24-D subspace, two photos per person
    float centre[sub];
    for (auto& c : centre) c = g(rng);
    for (float* x : {enrolled.data() + p * d, probes.data() + p * d}) {
      float s = 0;
      for (size_t i = 0; i < sub; ++i) {
        x[i] = centre[i] + 0.45f * g(rng);
        s += x[i] * x[i];
      }
      for (size_t i = 0; i < sub; ++i) x[i] /= std::sqrt(s);
    }
  }
  GraphOptions o;
  o.m = 4;  // a sparse graph: hubs are 1 in 16 nodes, so 600 late nodes bring ~37 of them
  o.ef_construction = 64;
  o.ef_search = 32;
  o.entry_width = 16;
  o.threads = 2;  // insertion and the second look run on two threads (also under TSan)
  auto idx = GraphIndex::create(d, o);
  ASSERT_TRUE(idx.is_ok());
  ASSERT_TRUE((*idx)->add(iota_ids(n), v).is_ok());
  EXPECT_EQ((*idx)->second_looks(), 0u) << "a first bulk load is no late population";
  EXPECT_EQ((*idx)->population_hub_count(), 0u);
  ASSERT_TRUE((*idx)->add(iota_ids(people, static_cast<Id>(n)), enrolled).is_ok());
  EXPECT_EQ((*idx)->second_looks(), people) << "the late people are each other's neighbours: a population";
  // Its level-1 nodes became hubs of its own (1 in m − 1 in m²: ~112 of 600 at m 4).
  const size_t pop_hubs = (*idx)->population_hub_count();
  EXPECT_GT(pop_hubs, 60u);
  EXPECT_LT(pop_hubs, 170u);
  auto more = gallery(people, d, 99);  // random templates again: their share, no population
  ASSERT_TRUE((*idx)->add(iota_ids(people, static_cast<Id>(n + people)), more).is_ok());
  EXPECT_EQ((*idx)->second_looks(), people);
  EXPECT_EQ((*idx)->population_hub_count(), pop_hubs);
  ASSERT_TRUE((*idx)->check().is_ok());
  size_t found = 0, exact = 0;
  for (size_t p = 0; p < people; ++p) {
    auto r = (*idx)->search(row(probes, p, d), 1);
    ASSERT_TRUE(r.is_ok());
    found += !r->ids.empty() && r->ids[0] == static_cast<Id>(n + p);
    size_t best = 0;
    for (size_t q = 1; q < people; ++q)
      if (kernels::dot_f32_ref(probes.data() + p * d, enrolled.data() + q * d, d) >
          kernels::dot_f32_ref(probes.data() + p * d, enrolled.data() + best * d, d))
        best = q;
    exact += best == p;
  }
  // Measured: 582–585 of 600 first (exact search: 592); without the population's own hubs
  // 576–578, one thread without the second look 478, without any hubs as well 159. The rest is
  // this deliberately sparse graph's own limit (m 4, ef 32). The population's own hubs
  // matter little here, where these people are 1 % of the graph and bring ~37 hubs of level 2;
  // they are for the 10 M benchmark, where LFW is 0.06 % and brings ~22 among ~39,000.
  EXPECT_GE(double(found) / people, 0.9) << found << " of " << people << " (exact search: " << exact << ")";
  RecordProperty("found_first", static_cast<int>(found));  // --gtest_output=xml shows it
  // The population hubs are saved (format 3) and the loaded graph answers the same.
  const fs::path dir = temp_dir("population_hubs");
  const IndexKey key = IndexKey::random();
  ASSERT_TRUE((*idx)->save(dir / "g.idx", key).is_ok());
  auto loaded = load_index(dir / "g.idx", key);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  auto* lg = dynamic_cast<GraphIndex*>(loaded->get());
  ASSERT_NE(lg, nullptr);
  EXPECT_EQ(lg->population_hub_count(), pop_hubs);
  EXPECT_EQ(lg->hub_count(), (*idx)->hub_count());
  for (size_t p = 0; p < people; p += 7) {
    auto a = (*idx)->search(row(probes, p, d), 5), b = lg->search(row(probes, p, d), 5);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    EXPECT_EQ(a->ids, b->ids) << "probe " << p;
  }
  fs::remove_all(dir);
}

// The re-rank reads a record (~2 µs: pread + decryption) only for a candidate whose estimate,
// plus its error bound, could still reach the k-th exact score: the answers stay those of
// re-ranking every candidate, with fewer records read.
TEST(GraphIndex, ReRankSkipsOnlyCandidatesThatCannotEnterTheTopK) {
  const size_t d = 128, n = 8000, nq = 100, k = 10;
  auto v = gallery(n, d);
  SyntheticGallery gen({n, d, 0.85f, 7, nullptr});
  std::vector<float> queries(nq * d);
  for (size_t j = 0; j < nq; ++j) gen.query(j, queries.data() + j * d, nullptr);
  auto g = graph(d);
  ASSERT_TRUE(g && g->add(iota_ids(n), v).is_ok());
  g->set_ef(96);
  // Records read by nq searches at a confidence (from the running mean over all searches).
  size_t searches = 0;
  double total = 0;
  auto run = [&](float confidence, std::vector<std::vector<Id>>& out) {
    g->set_rerank_confidence(confidence);
    out.clear();
    for (size_t j = 0; j < nq; ++j) {
      auto r = g->search(row(queries, j, d), k);
      EXPECT_TRUE(r.is_ok());
      out.push_back(r.is_ok() ? r->ids : std::vector<Id>{});
    }
    searches += nq;
    const double before = total;
    total = g->reranked_per_search() * double(searches);
    return (total - before) / double(nq);
  };
  std::vector<std::vector<Id>> all, bounded, reckless;
  const double read_all = run(0, all), read_bounded = run(3.5f, bounded), read_reckless = run(0.25f, reckless);
  auto same = [&](const std::vector<std::vector<Id>>& x) {
    size_t s = 0;
    for (size_t j = 0; j < nq; ++j) s += x[j] == all[j];
    return s;
  };
  EXPECT_DOUBLE_EQ(read_all, 96.0);
  // At 128-D the estimator's error is twice 512-D's (σ ≈ 0.067), so here the bound skips
  // only ~6 % of the records (measured: 90.4 of 96); at 512-D on LFW probes, ~30 %.
  EXPECT_LT(read_bounded, 0.97 * read_all) << "the bound skips nothing";
  EXPECT_GE(same(bounded), nq - 1) << "the bound skipped candidates that belonged in the top k";
  // A bound far tighter than the estimator's error loses answers: the margin is what keeps them.
  EXPECT_LT(read_reckless, read_bounded);
  EXPECT_LT(same(reckless), same(bounded));
}

TEST(GraphIndex, StrictFilterFallsBackToScanningTheCodes) {
  const size_t d = 128, n = 6000;
  auto v = gallery(n, d);
  auto g = graph(d);
  ASSERT_TRUE(g && g->add(iota_ids(n), v).is_ok());
  // A narrow beam gives up walking after max(64·ef, n/16) nodes; the scan finds the rest.
  g->set_ef(8);
  FunctionFilter rare([](Id id) { return id % 1000 == 999; });  // 6 eligible in the gallery
  auto r = g->search(row(v, 0, d), 10, &rare);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->ids.size(), 6u);
  for (Id id : r->ids) EXPECT_EQ(id % 1000, 999);
}

TEST(GraphIndex, RefusesBadOptionsAndDamagedFiles) {
  GraphOptions o;
  o.m = 1;
  EXPECT_EQ(GraphIndex::create(128, o).status().code(), StatusCode::kInvalidArgument);
  o.m = 16;
  o.ef_construction = 4;
  EXPECT_EQ(GraphIndex::create(128, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GraphIndex::create(0, {}).status().code(), StatusCode::kInvalidArgument);
  // An empty graph saves and loads; searching it returns nothing.
  const fs::path dir = temp_dir("graph_empty");
  auto g = graph(64);
  ASSERT_TRUE(g);
  const IndexKey key = IndexKey::random();
  ASSERT_TRUE(g->save(dir / "g.fvidx", key).is_ok());
  auto l = load_index(dir / "g.fvidx", key);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  EXPECT_EQ((*l)->size(), 0u);
  auto r = (*l)->search(std::vector<float>(64, 0.125f), 5);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->ids.empty());
  fs::remove_all(dir);
}

// ------------------------------------------------------------------ synthetic data, bench

TEST(Synthetic, DeterministicClusteredAndQueriesHaveMates) {
  SyntheticGallery g({1000, 512, 0.85f, 3, nullptr});
  std::vector<float> a(10 * 512), b(512);
  g.generate(0, 10, a.data());
  g.generate(3, 4, b.data());
  EXPECT_TRUE(std::equal(b.begin(), b.end(), a.begin() + 3 * 512));
  // Positions 2..4 are one identity with 3 photos: mated cosine near 1/(1 + 0.85²) ≈ 0.58.
  const float mated = kernels::dot_f32_ref(a.data() + 2 * 512, a.data() + 3 * 512, 512);
  EXPECT_NEAR(mated, 0.58, 0.1);
  const float unrelated = kernels::dot_f32_ref(a.data(), a.data() + 2 * 512, 512);
  EXPECT_LT(std::fabs(unrelated), 0.2);
  std::vector<size_t> mates;
  g.query(5, b.data(), &mates);
  ASSERT_FALSE(mates.empty());
  std::vector<float> m(512);
  g.generate(mates[0], mates[0] + 1, m.data());
  EXPECT_GT(kernels::dot_f32_ref(b.data(), m.data(), 512), 0.35);
}

// A face-shaped gallery follows the templates it was fitted to: here "templates" that fill
// only the first 32 of 128 dimensions, with variances 1..32 (participation ratio ≈ 24).
TEST(Synthetic, FaceShapedGalleryFollowsTheFittedTemplates) {
  const size_t d = 128, sub = 32, n = 4000;
  std::vector<float> real(n * d, 0.0f);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g;
  for (size_t r = 0; r < n; ++r) {
    float* x = real.data() + r * d;
    for (size_t i = 0; i < sub; ++i) x[i] = std::sqrt(float(i + 1)) * g(rng);
    float s = 0;
    for (size_t i = 0; i < d; ++i) s += x[i] * x[i];
    for (size_t i = 0; i < d; ++i) x[i] /= std::sqrt(s);
  }
  auto shape = TemplateDistribution::fit(real, d);
  ASSERT_TRUE(shape.is_ok()) << shape.status().to_string();
  EXPECT_NEAR((*shape)->effective_dim(), 24.0, 3.0);

  const size_t m = 500;
  SyntheticGallery face({m, d, 0.85f, 3, *shape}), iso({m, d, 0.85f, 3, nullptr});
  std::vector<float> a(m * d), b(m * d), again(d);
  face.generate(0, m, a.data());
  iso.generate(0, m, b.data());
  face.generate(77, 78, again.data());
  EXPECT_TRUE(std::equal(again.begin(), again.end(), a.begin() + 77 * d));
  double outside = 0, spread_face = 0, spread_iso = 0;
  for (size_t r = 0; r < m; ++r) {
    EXPECT_NEAR(kernels::dot_f32_ref(a.data() + r * d, a.data() + r * d, d), 1.0f, 1e-4);
    for (size_t i = sub; i < d; ++i) outside += double(a[r * d + i]) * a[r * d + i];
    if (r % 100 >= 35 && r + 1 < m && (r + 1) % 100 >= 35) {  // two single-photo identities
      spread_face += std::pow(kernels::dot_f32_ref(a.data() + r * d, a.data() + (r + 1) * d, d), 2);
      spread_iso += std::pow(kernels::dot_f32_ref(b.data() + r * d, b.data() + (r + 1) * d, d), 2);
    }
  }
  EXPECT_LT(outside / m, 0.01);  // the energy stays in the fitted subspace
  EXPECT_GT(spread_face, 2.0 * spread_iso);  // strangers spread wider than on the sphere
  // Two photos of one clustered identity are still close (positions 2..4: one identity).
  EXPECT_NEAR(kernels::dot_f32_ref(a.data() + 2 * d, a.data() + 3 * d, d), 0.58, 0.15);

  EXPECT_FALSE(TemplateDistribution::fit(std::span<const float>(real.data(), d * d), d).is_ok());  // n ≤ d
  EXPECT_FALSE(TemplateDistribution::fit(std::span<const float>(real.data(), d * 200 + 1), d).is_ok());
  BenchConfig c;
  c.size = 5000;
  c.gallery = "face";  // fitted to --lfw templates, none given
  EXPECT_FALSE(run_index_bench(c, production_factory()).is_ok());
  c.gallery = "round";
  EXPECT_FALSE(run_index_bench(c, production_factory()).is_ok());
}

// Issue 21: on a small face-shaped gallery (strangers spread like real templates, on ~100 of
// 256 dimensions with decaying variance) the IVF, with its default code dimension and half of
// its cells probed, keeps the exact scan's identifications within a fixed tolerance (measured:
// recall@10 0.972, the mate first for 274 of 300 probes by exact search, 273 by the IVF).
TEST(Synthetic, IvfOnAFaceShapedGalleryStaysWithinToleranceOfExact) {
  const size_t d = 256, sub = 100, n = 30000, nq = 300, k = 10;  // 256-D: drawing is quadratic in d
  const auto real = on_subspace(2000, d, sub, 8.0f, 11);
  auto shape = TemplateDistribution::fit(real, d);
  ASSERT_TRUE(shape.is_ok()) << shape.status().to_string();
  SyntheticGallery gal({n, d, 0.85f, 21, *shape});
  std::vector<float> v(n * d), q(nq * d);
  gal.generate(0, n, v.data());
  std::vector<std::vector<size_t>> mates(nq);
  for (size_t j = 0; j < nq; ++j) gal.query(j, q.data() + j * d, &mates[j]);

  IvfOptions o;
  o.nlist = 128;  // nprobe and rerank at their defaults: half of the cells, 100 re-scored
  IvfIndex ivf(d, o);
  ASSERT_TRUE(ivf.train(v).is_ok());
  ASSERT_TRUE(ivf.add(iota_ids(n), v).is_ok());
  EXPECT_EQ(ivf.stats().scan_bytes_per_item, 128u / 2);
  EXPECT_EQ(ivf.nprobe(), 64u) << "half of the cells by default";
  size_t exact_first = 0, ivf_first = 0, found = 0;
  for (size_t j = 0; j < nq; ++j) {
    TopK best(k);  // the float32 truth with the dispatched kernel: the scalar one is slow under sanitizers
    for (size_t i = 0; i < n; ++i) best.push(kernels::dot_f32(v.data() + i * d, q.data() + j * d, d), static_cast<Id>(i));
    const auto truth = best.result();
    auto r = ivf.search(row(q, j, d), k);
    ASSERT_TRUE(r.is_ok());
    auto is_mate = [&](Id id) { return std::count(mates[j].begin(), mates[j].end(), static_cast<size_t>(id)) > 0; };
    exact_first += is_mate(truth.ids[0]);
    ivf_first += !r->ids.empty() && is_mate(r->ids[0]);
    for (Id id : truth.ids) found += std::count(r->ids.begin(), r->ids.end(), id);
  }
  const double recall = double(found) / double(nq * k);
  EXPECT_GE(recall, 0.95) << "recall@10";
  EXPECT_GT(exact_first, nq / 2);  // the probes do have findable mates
  EXPECT_LE(exact_first, ivf_first + nq / 100) << "mate first: exact " << exact_first << ", IVF " << ivf_first;
}

TEST(Bench, SmallRunReportsEveryField) {
  for (const char* kind : {"exact", "ivf"}) {
    BenchConfig c;
    c.size = 20000;
    c.dim = 128;
    c.kind = kind;
    c.queries = 30;
    c.removals = 50;
    c.ivf.nlist = 64;
    auto r = run_index_bench(c, production_factory());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (const char* f : {"p50_ms", "p99_ms", "qps", "recall_at_1", "recall_at_10", "bytes_per_template", "build_s"})
      EXPECT_TRUE(r->contains(f)) << kind << ": " << f;
    EXPECT_EQ((*r)["removal"]["removed_returned_by_search"], 0);
    EXPECT_GT((*r)["recall_at_10"].get<double>(), 0.5) << kind;
    EXPECT_GT((*r)["mate_at_rank1"].get<double>(), 0.9) << kind;
  }
}

// A gallery saved once the synthetic templates are in, loaded by a later run, answers as the
// one built in that run (the 10 M graph takes hours to build: benchmarks are run from a save).
TEST(Bench, ASavedSyntheticGalleryStandsInForBuildingIt) {
  const fs::path dir = temp_dir("bench_cache");
  BenchConfig c;
  c.size = 6000;
  c.dim = 64;
  c.kind = "hnsw";
  c.threads = {1};
  c.queries = 40;
  c.removals = 0;
  c.graph.store_path = dir / "records";
  c.save_synthetic = dir / "gallery.idx";
  auto built = run_index_bench(c, production_factory());
  ASSERT_TRUE(built.is_ok()) << built.status().to_string();
  ASSERT_TRUE(fs::exists(dir / "gallery.idx.json"));
  c.save_synthetic.clear();
  c.load_synthetic = dir / "gallery.idx";
  auto loaded = run_index_bench(c, production_factory());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)["size"], 6000u);
  EXPECT_TRUE(loaded->contains("load_s"));
  for (const char* f : {"recall_at_1", "recall_at_10", "mate_at_rank1", "truth_kth_score"})
    EXPECT_EQ((*loaded)[f], (*built)[f]) << f;
  EXPECT_GT((*loaded)["disk_bytes_per_template"].get<double>(), 0) << "records kept in the given file";
  // A run that would make a different gallery refuses the save instead of measuring the wrong one.
  BenchConfig other = c;
  other.seed = 43;
  EXPECT_FALSE(run_index_bench(other, production_factory()).is_ok());
  other = c;
  other.size = 6001;
  EXPECT_FALSE(run_index_bench(other, production_factory()).is_ok());
  other = c;
  other.lfw_order = "spread";  // LFW templates would be inside a saved gallery
  EXPECT_FALSE(run_index_bench(other, production_factory()).is_ok());
  other = c;
  other.save_synthetic = dir / "again.idx";
  EXPECT_FALSE(run_index_bench(other, production_factory()).is_ok());
  {
    std::ofstream(dir / "gallery.idx.json", std::ios::trunc) << "{\"key\": \"zz\"}";
  }
  EXPECT_FALSE(run_index_bench(c, production_factory()).is_ok());
  fs::remove_all(dir);
}

// Real templates mixed in (here: 40 identities × 3 photos written as `facevault embed`
// output): at the end of the stream or spread through it, the same data and the same truth.
TEST(Bench, MixesTheRealGalleryInAtTheEndOrSpreadThroughTheStream) {
  const size_t d = 128;
  const fs::path dir = temp_dir("bench_lfw");
  const fs::path file = dir / "templates.jsonl";
  {
    std::ofstream out(file);
    std::mt19937_64 rng(11);
    std::normal_distribution<float> g;
    for (int id = 0; id < 40; ++id) {
      std::vector<float> centre(d);
      for (auto& v : centre) v = g(rng);
      for (int photo = 1; photo <= 3; ++photo) {
        std::vector<float> t(d);
        float s = 0;
        for (size_t i = 0; i < d; ++i) s += (t[i] = centre[i] + 0.6f * g(rng)) * t[i];
        out << "{\"file\":\"/lfw/p" << id << "/p" << id << "_" << photo << ".jpg\",\"width\":10,\"height\":10,"
            << "\"faces\":[{\"box\":[0,0,10,10],\"template\":[";
        for (size_t i = 0; i < d; ++i) out << (i ? "," : "") << t[i] / std::sqrt(s);
        out << "]}]}\n";
      }
    }
  }
  for (const char* order : {"end", "spread"}) {
    BenchConfig c;
    c.size = 20000;
    c.dim = d;
    c.kind = "exact";  // the mixing is under test, not an index (and the TSan run stays short)
    c.queries = 80;
    c.removals = 0;
    c.lfw = file.string();
    c.lfw_order = order;
    auto r = run_index_bench(c, production_factory());
    ASSERT_TRUE(r.is_ok()) << order << ": " << r.status().to_string();
    EXPECT_EQ((*r)["size"], 20000u) << order;
    EXPECT_EQ((*r)["lfw_order"], order);
    EXPECT_EQ((*r)["query_source"], "LFW mated probes");
    EXPECT_GT((*r)["mate_at_rank1"].get<double>(), 0.95) << order;
    EXPECT_GT((*r)["recall_at_1"].get<double>(), 0.95) << order;  // the mate, found as exact search finds it
    // Each probe's top 10 holds its one mate (cosine ~0.7) and otherwise chance matches among
    // 20 k random templates (~0.3 at 128-D), not the other 39 people (~0).
    EXPECT_GE((*r)["truth_lfw_fraction"].get<double>(), 0.1) << order;
    EXPECT_LT((*r)["truth_lfw_fraction"].get<double>(), 0.2) << order;
    EXPECT_GT((*r)["truth_kth_score"].get<double>(), 0.15) << order;
    EXPECT_LT((*r)["truth_kth_score"].get<double>(), 0.5) << order;
  }
  {  // Without ground truth (--no-truth, for galleries too big to scan): the mates still count.
    BenchConfig c;
    c.size = 20000;
    c.dim = d;
    c.kind = "exact";
    c.queries = 80;
    c.removals = 0;
    c.lfw = file.string();
    c.ground_truth = false;
    auto r = run_index_bench(c, production_factory());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_GT((*r)["mate_at_rank1"].get<double>(), 0.95);
    EXPECT_FALSE(r->contains("recall_at_10"));
    EXPECT_FALSE(r->contains("truth_lfw_fraction"));
  }
  BenchConfig c;
  c.size = 20000;
  c.dim = d;
  c.lfw = file.string();
  c.lfw_order = "first";
  EXPECT_FALSE(run_index_bench(c, production_factory()).is_ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fv::index
