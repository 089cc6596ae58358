// Corrupted index state. What is persisted (src/index, src/service):
//   - VectorIndex::save / load_index: an exact or IVF index as one sealed stream (magic
//     "FVINDEX1", secretstream header, authenticated 1 MiB chunks, final tag). The service
//     does not persist its index (it rebuilds it from the vault at the first search of each
//     process, docs/index.md), so these files exist only where a caller saves one;
//   - the IVF's re-rank store: DIR/search-index-PID-N.rerank, records sealed under a key that
//     lives only in the process that wrote it (a scratch file, not reloaded).
// Checked here:
//   1. every damage to a saved file — each byte region flipped (magic, stream header, chunk
//      length, ciphertext, tag), truncation at every boundary, zero length, trailing bytes,
//      another index file (other key) or a non-index file swapped in — gives a clear
//      kCorruptData/kNotFound error, never a crash and never an index;
//   2. files sealed with the right key whose content is wrong (unknown kind, another format
//      version, bad dimension, array lengths larger than the file, inconsistent sizes,
//      duplicate ids, IVF header out of range): refused with kCorruptData, no crash, no
//      attempt to allocate what the file claims;
//   3. the re-rank store of a running service damaged (bytes flipped, truncated, emptied):
//      searches fail with a clear error or return the right candidates — never a wrong
//      candidate — and the service recovers by rebuilding its index from the vault.
//
// Bugs this found (fixed in src/index): an IVF header with graph degree 0 or 1 crashed in
// hnswlib (SIGSEGV in mutuallyConnectNewElement); a rerank of 2^40 threw std::bad_alloc out
// of search().
// Mutations tried (test must be able to fail):
//   - SealedReader::read_vec without the bound on the bytes left in the file:
//     SealedIndexContent failed with "C++ exception with description std::bad_alloc thrown
//     in the test body" (2^35 ids claimed). Reverted.
//   - Service::search_gallery without the rebuild on an index error: RerankStore failed
//     3 times, "the service did not recover from a damaged re-rank store" (each damage made
//     every later search fail with kCorruptData / kIoError). Reverted.
#include <cstring>
#include <fstream>

#include "bench/harness/synthetic.h"
#include "fault/fault_util.h"
#include "index/index.h"
#include "index/secure_io.h"

namespace fs = std::filesystem;

namespace fv::test {
namespace {

using index::Id;
using index::IndexKey;
using index::load_index;

std::vector<float> gallery(size_t n, size_t d, uint64_t seed = 7) {
  std::vector<float> v(n * d);
  index::SyntheticGallery({n, d, 0.85f, seed, nullptr}).generate(0, n, v.data());
  return v;
}

std::unique_ptr<index::VectorIndex> build(const std::string& kind, size_t n, size_t d) {
  index::IndexOptions o;
  o.kind = kind;
  std::vector<Id> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<Id>(i + 1);
  auto v = gallery(n, d);
  auto ix = index::build_index(o, d, ids, v);
  EXPECT_TRUE(ix.is_ok()) << ix.status().to_string();
  return ix.is_ok() ? std::move(ix).value() : nullptr;
}

// The plaintext of a sealed index file ("" when it does not open).
std::string unseal(const fs::path& p, const IndexKey& key) {
  std::string plain;
  auto r = index::SealedReader::open(p, key);
  if (!r.is_ok()) return plain;
  char c;
  while ((*r)->read(&c, 1).is_ok()) plain.push_back(c);
  return plain;
}

void put(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes; }

// A load that must fail cleanly.
void expect_refused(const fs::path& p, const IndexKey& key, const std::string& what) {
  auto r = load_index(p, key);
  ASSERT_FALSE(r.is_ok()) << what << ": a damaged index file was loaded";
  EXPECT_TRUE(r.status().code() == StatusCode::kCorruptData || r.status().code() == StatusCode::kNotFound)
      << what << ": " << r.status().to_string();
  EXPECT_FALSE(r.status().message().empty()) << what;
}

class SavedIndex : public ::testing::TestWithParam<std::string> {};

TEST_P(SavedIndex, EveryDamageIsRefusedCleanly) {
  TempDir tmp;
  auto ix = build(GetParam(), 1500, 128);
  ASSERT_TRUE(ix);
  const IndexKey key = IndexKey::random();
  const fs::path file = tmp.path() / "a.fvidx";
  ASSERT_TRUE(ix->save(file, key).is_ok());
  ASSERT_TRUE(load_index(file, key).is_ok());
  const std::string good = slurp(file);
  const size_t n = good.size();
  const fs::path bad = tmp.path() / "bad.fvidx";
  // Flips: magic (0..7), stream header (8..31), first chunk length (32..35), ciphertext,
  // the last bytes (final chunk's tag).
  std::vector<size_t> flips = {0, 7, 8, 20, 31, 32, 33, 35, 36, 100, n / 3, n / 2, n - 40, n - 17, n - 1};
  for (size_t at : flips) {
    std::string b = good;
    b[at] = static_cast<char>(b[at] ^ 0x5a);
    put(bad, b);
    expect_refused(bad, key, "byte " + std::to_string(at) + " flipped");
  }
  // Truncations: empty, inside the magic, header, chunk length, chunk, one byte short.
  for (size_t len : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(20), size_t(32), size_t(34), size_t(36), size_t(37),
                     n / 2, n - 17, n - 1}) {
    put(bad, good.substr(0, len));
    expect_refused(bad, key, "truncated to " + std::to_string(len) + " bytes");
  }
  put(bad, good + "x");
  expect_refused(bad, key, "a trailing byte");
  put(bad, good + good);
  expect_refused(bad, key, "the file twice");
  put(bad, std::string(n, '\0'));
  expect_refused(bad, key, "zeros");
  {
    std::string b = good;
    std::memcpy(b.data(), "FVINDEX2", 8);
    put(bad, b);
    expect_refused(bad, key, "another format version in the magic");
  }
  // Another index file swapped in: sealed under another key.
  auto other = build(GetParam() == "exact" ? "ivf" : "exact", 1500, 128);
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->save(tmp.path() / "other.fvidx", IndexKey::random()).is_ok());
  expect_refused(tmp.path() / "other.fvidx", key, "another index file (other key)");
  // Not an index file at all, a directory, a missing file.
  put(bad, "SQLite format 3\0 not an index");
  expect_refused(bad, key, "a non-index file");
  expect_refused(tmp.path(), key, "a directory");
  expect_refused(tmp.path() / "missing.fvidx", key, "a missing file");
  // The intact file still loads, with the right key only.
  expect_refused(file, IndexKey::random(), "the wrong key");
  auto again = load_index(file, key);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)->size(), ix->size());
}

INSTANTIATE_TEST_SUITE_P(Fault, SavedIndex, ::testing::Values("exact", "ivf", "hnsw"));

// Files sealed with the right key but holding the wrong content: the loader's own checks.
TEST(SealedIndexContent, WrongContentUnderTheRightKeyIsRefused) {
  TempDir tmp;
  const IndexKey key = IndexKey::random();
  const fs::path p = tmp.path() / "crafted.fvidx";
  auto craft = [&](const std::function<Status(index::SealedWriter&)>& body) {
    auto w = index::SealedWriter::create(p, key);
    ASSERT_TRUE(w.is_ok());
    ASSERT_TRUE(body(**w).is_ok());
    ASSERT_TRUE((*w)->finish().is_ok());
  };
  const char exact_tag[8] = {'e', 'x', 'a', 'c', 't', 0, 0, 1};
  auto exact = [&](uint64_t dim, uint64_t nids, uint64_t nscales, uint64_t ncodes, bool dup = false) {
    craft([&](index::SealedWriter& w) -> Status {
      FV_RETURN_IF_ERROR(w.write(exact_tag, 8));
      FV_RETURN_IF_ERROR(w.write_pod<uint64_t>(dim));
      FV_RETURN_IF_ERROR(w.write_pod<uint64_t>(nids));
      for (uint64_t i = 0; i < std::min<uint64_t>(nids, 4); ++i) FV_RETURN_IF_ERROR(w.write_pod<Id>(dup ? 1 : Id(i)));
      FV_RETURN_IF_ERROR(w.write_pod<uint64_t>(nscales));
      for (uint64_t i = 0; i < std::min<uint64_t>(nscales, 4); ++i) FV_RETURN_IF_ERROR(w.write_pod<float>(0.01f));
      FV_RETURN_IF_ERROR(w.write_pod<uint64_t>(ncodes));
      std::vector<uint8_t> codes(std::min<uint64_t>(ncodes, 4 * dim), 128);
      return w.write(codes.data(), codes.size());
    });
  };
  auto refused = [&](const std::string& what) {
    SCOPED_TRACE(what);
    expect_refused(p, key, what);
  };

  exact(8, 4, 4, 32);
  ASSERT_TRUE(load_index(p, key).is_ok()) << "the well-formed crafted file must load";
  craft([&](index::SealedWriter& w) { return w.write("bogus\0\0\1", 8); });
  refused("an unknown index kind");
  craft([&](index::SealedWriter& w) { return w.write("hnsw\0\0\0\2", 8); });
  refused("a graph tag and nothing after it");
  craft([&](index::SealedWriter& w) { return w.write("hnsw\0\0\0\3", 8); });
  refused("a version-3 graph tag and nothing after it");
  craft([&](index::SealedWriter& w) { return w.write("hnsw\0\0\0\4", 8); });
  refused("a graph format from a later facevault");
  craft([&](index::SealedWriter& w) { return w.write("hnsw\0\0\0\1", 8); });
  {
    auto r = load_index(p, key);
    ASSERT_FALSE(r.is_ok()) << "a version-1 graph (8-bit re-rank records)";
    EXPECT_NE(r.status().message().find("rebuild"), std::string::npos) << r.status().message();
  }
  craft([&](index::SealedWriter& w) { return w.write("exact\0\0\2", 8); });
  refused("another exact format version");
  craft([&](index::SealedWriter& w) { return w.write("exa", 3); });
  refused("a tag cut short");
  exact(0, 0, 0, 0);
  refused("dimension 0");
  exact(1u << 20, 0, 0, 0);
  refused("dimension 2^20");
  exact(8, uint64_t(1) << 35, 4, 32);
  refused("2^35 ids claimed in a small file");
  exact(8, 4, uint64_t(1) << 34, 32);
  refused("2^34 scales claimed in a small file");
  exact(8, 4, 4, uint64_t(1) << 35);
  refused("2^35 code bytes claimed in a small file");
  exact(8, ~uint64_t(0), 4, 32);
  refused("2^64-1 ids claimed");
  exact(8, 4, 3, 32);
  refused("fewer scales than ids");
  exact(8, 4, 4, 31);
  refused("codes not ids × dim");
  exact(8, 4, 4, 32, /*dup=*/true);
  refused("duplicate ids");
  // IVF: a real saved IVF, decrypted, one field changed, sealed again with the same key.
  auto ivf_index = build("ivf", 1500, 128);
  ASSERT_TRUE(ivf_index);
  const fs::path saved = tmp.path() / "ivf.fvidx";
  ASSERT_TRUE(ivf_index->save(saved, key).is_ok());
  const std::string plain = unseal(saved, key);
  ASSERT_GT(plain.size(), 8 + 80u);
  auto reseal = [&](std::string body) {
    craft([&](index::SealedWriter& w) { return w.write(body.data(), body.size()); });
  };
  reseal(plain);
  ASSERT_TRUE(load_index(p, key).is_ok()) << "the re-sealed IVF must load";
  // Header after the 8-byte tag: dim, code_dim, nlist, nprobe, rerank, hnsw_m,
  // ef_construction, ef_search, seed, size (uint64 each); then mean (length-prefixed).
  auto with_field = [&](int field, uint64_t value) {
    std::string b = plain;
    std::memcpy(b.data() + 8 + 8 * field, &value, 8);
    return b;
  };
  const std::pair<int, uint64_t> bad_fields[] = {
      {0, 0}, {0, 4097}, {0, 64}, {1, 0}, {1, 60}, {1, 192}, {2, 0}, {2, uint64_t(1) << 30},
      {5, 0}, {5, 1}, {5, uint64_t(1) << 40}, {9, 1}, {9, ~uint64_t(0)}};
  for (auto [field, value] : bad_fields) {
    reseal(with_field(field, value));
    refused("IVF header field " + std::to_string(field) + " = " + std::to_string(value));
  }
  // Search parameters that are odd but legal (nprobe 0 is the default share of the cells;
  // ef_construction 0 is raised to the degree; huge widths are capped by the cell and
  // template counts): the index loads and searches without crashing (a rerank of 2^40 threw
  // std::bad_alloc out of search() before R was clamped to the index size).
  {
    std::vector<float> q = gallery(1, 128, 99);
    auto want = ivf_index->search(q, 10);
    ASSERT_TRUE(want.is_ok());
    const std::pair<int, uint64_t> odd_fields[] = {{3, 0}, {3, uint64_t(1) << 40}, {4, 0}, {4, uint64_t(1) << 40},
                                                   {6, 0}, {6, uint64_t(1) << 40}, {7, uint64_t(1) << 40}};
    for (auto [field, value] : odd_fields) {
      SCOPED_TRACE("IVF header field " + std::to_string(field) + " = " + std::to_string(value));
      reseal(with_field(field, value));
      auto l = load_index(p, key);
      if (!l.is_ok()) {
        EXPECT_EQ(l.status().code(), StatusCode::kCorruptData) << l.status().to_string();
        continue;
      }
      // An approximate index with other search widths may rank differently; what it returns
      // must still be ten templates of the index, best first.
      auto got = (*l)->search(q, 10);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      EXPECT_EQ(got->ids.size(), want->ids.size());
      for (size_t i = 0; i < got->ids.size(); ++i) {
        EXPECT_TRUE(ivf_index->contains(got->ids[i])) << got->ids[i];
        if (i) {
          EXPECT_GE(got->scores[i - 1], got->scores[i]);
        }
      }
    }
  }
  reseal(plain.substr(0, plain.size() / 2));
  refused("an IVF cut in half");
  reseal(plain + "x");
  refused("an IVF with a byte more");
  {
    // The mean's length prefix (right after the header) claims more than the file holds.
    std::string b = plain;
    const uint64_t huge = uint64_t(1) << 40;
    std::memcpy(b.data() + 8 + 80, &huge, 8);
    reseal(b);
    refused("an IVF array longer than the file");
  }
}

// The graph: a real saved graph, decrypted, one field or one link changed, sealed again with
// the same key. The loader checks the header and then the graph itself (GraphIndex::check):
// a link out of range or to a free node would otherwise be followed by every search.
TEST(SealedIndexContent, DamagedGraphUnderTheRightKeyIsRefused) {
  TempDir tmp;
  const IndexKey key = IndexKey::random();
  const size_t n = 1500, d = 128;
  auto g = build("hnsw", n, d);
  ASSERT_TRUE(g);
  ASSERT_TRUE(g->remove(std::vector<Id>{7}).is_ok());  // one free node in the file
  const fs::path saved = tmp.path() / "graph.fvidx", p = tmp.path() / "crafted.fvidx";
  ASSERT_TRUE(g->save(saved, key).is_ok());
  const std::string plain = unseal(saved, key);
  auto reseal = [&](const std::string& body) {
    auto w = index::SealedWriter::create(p, key);
    ASSERT_TRUE(w.is_ok());
    ASSERT_TRUE((*w)->write(body.data(), body.size()).is_ok());
    ASSERT_TRUE((*w)->finish().is_ok());
  };
  reseal(plain);
  ASSERT_TRUE(load_index(p, key).is_ok()) << "the re-sealed graph must load";
  auto put64 = [&](size_t at, uint64_t v) {
    std::string b = plain;
    std::memcpy(b.data() + at, &v, 8);
    return b;
  };
  // Header after the 8-byte tag: dim, words, m, ef_construction, ef_search, rerank, seed,
  // nodes, live, entry, max_level, entry_width.
  const std::pair<int, uint64_t> bad_fields[] = {{0, 0},  {0, 4097}, {1, 3},  {2, 1}, {2, 1000}, {3, 1},
                                                 {7, ~uint64_t(0)}, {8, n + 1}, {8, n}, {9, n + 5}, {10, 17},
                                                 {11, uint64_t(1) << 40}};
  for (auto [field, value] : bad_fields) {
    reseal(put64(8 + 8 * size_t(field), value));
    expect_refused(p, key, "graph header field " + std::to_string(field) + " = " + std::to_string(value));
  }
  // The arrays: codes (n × 2 words), a (n floats), then level-0 links (n × 32).
  const size_t links_at = 8 + 96 + 8 + n * 16 + 8 + n * 4 + 8;
  std::string b = plain;
  const uint32_t far = 0xFFFFFFF0u;
  std::memcpy(b.data() + links_at, &far, 4);  // node 0's first link out of range
  reseal(b);
  expect_refused(p, key, "a link out of range");
  b = plain;
  const uint32_t freed = 6;  // id 7 was node 6: it is free now
  std::memcpy(b.data() + links_at + 4 * 32 * 10, &freed, 4);
  reseal(b);
  expect_refused(p, key, "a link to a free node");
  reseal(plain.substr(0, plain.size() - 10));
  expect_refused(p, key, "a graph cut short");
}

// A service with an IVF gallery (config index.kind = ivf): its re-rank store damaged under it.
TEST(RerankStore, DamagedStoreNeverGivesWrongCandidatesAndTheServiceRecovers) {
  ASSERT_TRUE(vault::ensure_sodium().is_ok());
  unsetenv(vault::kMasterKeyEnv);
  TempDir tmp;
  const fs::path v = tmp.path() / "v";
  vault::VaultConfig cfg;
  cfg.index_kind = "ivf";
  ASSERT_TRUE(vault::Vault::init(v, cfg).is_ok());
  auto svc = open_service(v);
  ASSERT_TRUE(svc);
  std::mt19937 rng(5);
  std::vector<std::pair<std::string, face::FaceTemplate>> people;
  for (int i = 0; i < 300; ++i) {
    const std::string ref = "p" + std::to_string(i);
    auto b = svc->add_basis(kAdmin, {ref, service::BasisKind::kConsent, "form", {"access-control"}, std::nullopt});
    ASSERT_TRUE(b.is_ok());
    auto t = random_template(rng);
    ASSERT_TRUE(svc->enroll_template(kAdmin, {ref, b->basis_id}, t).is_ok());
    people.emplace_back(ref, t);
  }
  auto search = [&](int who) { return svc->search_templates(kAdmin, {"access-control", "c"}, {near_template(people[who].second, rng, 0.3f)}); };
  auto r = search(0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(svc->search_index("faceplugin-mobilefacenet-512", 1)->kind(), "ivf");
  auto store = [&]() -> fs::path {
    for (auto& e : fs::directory_iterator(v))
      if (e.path().extension() == ".rerank") return e.path();
    return {};
  };
  ASSERT_FALSE(store().empty()) << "no re-rank store in the vault directory";
  std::vector<std::pair<std::string, std::function<void(const fs::path&)>>> damages = {
      {"bytes flipped everywhere", [](const fs::path& p) {
         std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
         const auto size = fs::file_size(p);
         for (uintmax_t off = 0; off < size; off += 61) {
           f.seekg(static_cast<std::streamoff>(off));
           char c = 0;
           f.read(&c, 1);
           c = static_cast<char>(c ^ 0x21);
           f.seekp(static_cast<std::streamoff>(off));
           f.write(&c, 1);
         }
       }},
      {"truncated to half", [](const fs::path& p) { fs::resize_file(p, fs::file_size(p) / 2); }},
      {"emptied", [](const fs::path& p) { fs::resize_file(p, 0); }},
  };
  for (auto& [what, damage] : damages) {
    SCOPED_TRACE(what);
    const fs::path p = store();
    ASSERT_FALSE(p.empty());
    damage(p);
    int errors = 0;
    for (int who = 0; who < 20; ++who) {
      auto s = search(who);
      if (!s.is_ok()) {
        ++errors;
        EXPECT_TRUE(s.status().code() == StatusCode::kCorruptData || s.status().code() == StatusCode::kIoError)
            << s.status().to_string();
        continue;
      }
      // Never a wrong candidate: the best one is the person searched for.
      ASSERT_FALSE(s->faces[0].candidates.empty());
      EXPECT_EQ(s->faces[0].candidates[0].subject_ref, people[who].first);
    }
    EXPECT_EQ(errors, 0) << "the service did not recover from a damaged re-rank store";
  }
}

}  // namespace
}  // namespace fv::test
