// The in-memory search gallery on its own: built from synthetic rows (no vault, no models),
// searched by subject, filtered by eligibility, forgetting a subject physically, and kept in
// step with the vault's generation (online add, drop and rebuild).
#include "service/gallery.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace fv::service {
namespace {

constexpr int kDim = 64;
const std::string kModel = "synthetic";

std::vector<float> unit(std::vector<float> v) {
  double n = 0;
  for (float x : v) n += double(x) * x;
  n = std::sqrt(n);
  for (float& x : v) x = static_cast<float>(x / n);
  return v;
}

// Subject s has faces near its own random direction; each face is collected under basis 100+s.
struct Synthetic {
  int subjects = 5, faces_per_subject = 3;
  std::vector<std::vector<float>> centers;
  explicit Synthetic(int n = 5, unsigned seed = 7) : subjects(n) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g;
    for (int s = 0; s < subjects; ++s) {
      std::vector<float> v(kDim);
      for (auto& x : v) x = g(rng);
      centers.push_back(unit(v));
    }
  }
  face::FaceTemplate near(int s, int f) const {
    std::vector<float> v = centers[s];
    for (int i = 0; i < kDim; ++i) v[i] += 0.05f * std::sin(float(f * kDim + i));
    return face::FaceTemplate{kModel, 1, unit(v)};
  }
  static int64_t face_id(int s, int f) { return 1 + s * 10 + f; }
  Gallery::RowSource source() const {
    return [this](const std::function<Status(GalleryRow&)>& sink) -> Status {
      for (int s = 0; s < subjects; ++s)
        for (int f = 0; f < faces_per_subject; ++f) {
          GalleryRow r{{face_id(s, f), s + 1, 100 + s + 1, "uid" + std::to_string(s + 1), "ref" + std::to_string(s + 1)},
                       near(s, f)};
          FV_RETURN_IF_ERROR(sink(r));
        }
      return Status::ok();
    };
  }
  Gallery::ModelTotals totals() const {
    return {{Gallery::model_key(kModel, 1), static_cast<size_t>(subjects * faces_per_subject)}};
  }
};

GalleryOptions exact_options() {
  GalleryOptions o;
  o.index_kind = "exact";
  o.store_dir = std::filesystem::temp_directory_path();
  return o;
}

TEST(Gallery, LoadsRowsAndSearchesTopKBySubject) {
  Synthetic syn;
  Gallery g(exact_options());
  ASSERT_TRUE(g.load(3, syn.totals(), syn.source()).is_ok());
  EXPECT_TRUE(g.loaded());
  EXPECT_EQ(g.generation(), 3);
  EXPECT_EQ(g.size(), 15u);
  EXPECT_EQ(g.held(), 15u);
  ASSERT_NE(g.index_for(kModel, 1), nullptr);
  EXPECT_EQ(g.index_for(kModel, 2), nullptr);

  const face::FaceTemplate probe{kModel, 1, syn.centers[2]};
  auto hits = g.search(probe, 2, -2.0, nullptr, {});
  ASSERT_TRUE(hits.is_ok()) << hits.status().to_string();
  // At least two distinct subjects although every subject has three faces near each other
  // (the index is asked for k × the most faces any subject has; the caller keeps the k best).
  ASSERT_GE(hits->size(), 2u);
  ASSERT_TRUE(hits->count(3));
  EXPECT_GT(hits->at(3).similarity, 0.9);
  EXPECT_EQ(g.owner(hits->at(3).face_id)->subject_id, 3);
  EXPECT_EQ(g.subject(3)->ref, "ref3");
  EXPECT_EQ(g.subject(3)->faces.size(), 3u);

  // Everyone above a threshold: only the probe's own subject is that close.
  auto range = g.search(probe, SIZE_MAX, 0.8, nullptr, {});
  ASSERT_TRUE(range.is_ok());
  ASSERT_EQ(range->size(), 1u);
  EXPECT_TRUE(range->count(3));

  // Another model's probe compares with nothing.
  auto other = g.search(face::FaceTemplate{"other", 1, syn.centers[2]}, 5, -2.0, nullptr, {});
  ASSERT_TRUE(other.is_ok());
  EXPECT_TRUE(other->empty());
}

TEST(Gallery, EligibilityFilterKeepsOnlyTheBasesInForce) {
  Synthetic syn;
  Gallery g(exact_options());
  ASSERT_TRUE(g.load(1, syn.totals(), syn.source()).is_ok());
  auto e = std::make_shared<Gallery::Eligibility>();
  e->bases = {101, 104};  // subjects 1 and 4
  e->subjects = {1, 4};
  index::FunctionFilter filter([&](index::Id face) {
    const auto* o = g.owner(face);
    return o && e->bases.count(o->basis_id) > 0;
  });
  // Probe at subject 3, who is not eligible: the k eligible ones come back anyway.
  auto hits = g.search(face::FaceTemplate{kModel, 1, syn.centers[2]}, 2, -2.0, &filter, {});
  ASSERT_TRUE(hits.is_ok());
  ASSERT_EQ(hits->size(), 2u);
  EXPECT_TRUE(hits->count(1));
  EXPECT_TRUE(hits->count(4));
  EXPECT_EQ(g.eligible_templates(*e), 6);
}

TEST(Gallery, EligibilityCacheFollowsGenerationAndClock) {
  Gallery g(exact_options());
  auto e = std::make_shared<Gallery::Eligibility>();
  e->generation = 4;
  e->computed_at = "2025-01-01T00:00:00.000Z";
  e->valid_until = "2025-06-01T00:00:00.000Z";
  g.remember_eligibility("access-control", e);
  EXPECT_EQ(g.cached_eligibility("access-control", 4, "2025-02-01T00:00:00.000Z"), e);
  EXPECT_EQ(g.cached_eligibility("access-control", 5, "2025-02-01T00:00:00.000Z"), nullptr);  // a basis changed
  EXPECT_EQ(g.cached_eligibility("access-control", 4, "2025-06-01T00:00:00.000Z"), nullptr);  // something expired
  EXPECT_EQ(g.cached_eligibility("access-control", 4, "2024-12-31T00:00:00.000Z"), nullptr);  // clock went back
  EXPECT_EQ(g.cached_eligibility("other", 4, "2025-02-01T00:00:00.000Z"), nullptr);
  g.forget_eligibility();
  EXPECT_EQ(g.cached_eligibility("access-control", 4, "2025-02-01T00:00:00.000Z"), nullptr);
}

TEST(Gallery, ForgetSubjectRemovesItsTemplatesPhysically) {
  Synthetic syn;
  Gallery g(exact_options());
  EXPECT_EQ(g.held(), 0u) << "nothing is held before the load";
  ASSERT_TRUE(g.load(1, syn.totals(), syn.source()).is_ok());
  auto removed = g.forget_subject(3);
  ASSERT_TRUE(removed.is_ok());
  EXPECT_EQ(*removed, 3u);
  EXPECT_EQ(g.size(), 12u);
  EXPECT_EQ(g.held(), 12u);
  const auto* ix = g.index_for(kModel, 1);
  for (int f = 0; f < 3; ++f) EXPECT_FALSE(ix->contains(Synthetic::face_id(2, f)));
  EXPECT_EQ(g.subject(3), nullptr);
  auto hits = g.search(face::FaceTemplate{kModel, 1, syn.centers[2]}, 5, -2.0, nullptr, {});
  ASSERT_TRUE(hits.is_ok());
  EXPECT_EQ(hits->size(), 4u);
  EXPECT_FALSE(hits->count(3));
  // Forgetting someone the gallery does not hold removes nothing.
  EXPECT_EQ(*g.forget_subject(42), 0u);
}

TEST(Gallery, OnlineAddWhenCurrentDropWhenSomeoneElseChangedTheVault) {
  Synthetic syn;
  Gallery g(exact_options());
  ASSERT_TRUE(g.load(10, syn.totals(), syn.source()).is_ok());
  const face::FaceTemplate t{kModel, 1, syn.centers[0]};
  // Our enrollment bumped the generation by one: the template joins the index now.
  g.add_enrolled(11, FaceIdentity{500, 1, 101, "uid1", "ref1"}, t);
  EXPECT_TRUE(g.loaded());
  EXPECT_EQ(g.generation(), 11);
  EXPECT_EQ(g.size(), 16u);
  EXPECT_EQ(g.held(), 16u);
  EXPECT_EQ(g.subject(1)->faces.size(), 4u);
  EXPECT_TRUE(g.index_for(kModel, 1)->contains(500));
  // A template of a new model gets an index of its own.
  g.add_enrolled(12, FaceIdentity{501, 2, 102, "uid2", "ref2"}, face::FaceTemplate{"other", 3, syn.centers[1]});
  ASSERT_NE(g.index_for("other", 3), nullptr);
  EXPECT_EQ(g.size(), 17u);
  EXPECT_EQ(g.held(), 17u);
  // Another process changed the templates meanwhile (generation moved by two): drop, the
  // next search rebuilds from the vault.
  g.add_enrolled(14, FaceIdentity{502, 1, 101, "uid1", "ref1"}, t);
  EXPECT_FALSE(g.loaded());
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(g.held(), 0u);
  // Not loaded: an add does nothing.
  g.add_enrolled(15, FaceIdentity{503, 1, 101, "uid1", "ref1"}, t);
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(g.held(), 0u);
  // The rebuild reflects the vault's generation.
  ASSERT_TRUE(g.load(15, syn.totals(), syn.source()).is_ok());
  EXPECT_EQ(g.generation(), 15);
  EXPECT_EQ(g.size(), 15u);
  EXPECT_EQ(g.held(), 15u);
}

TEST(Gallery, AFailedLoadLeavesItDroppedAndTheSourceErrorComesBack) {
  Synthetic syn;
  Gallery g(exact_options());
  ASSERT_TRUE(g.load(1, syn.totals(), syn.source()).is_ok());
  // A template whose dimension differs from its model's.
  auto bad = [&](const std::function<Status(GalleryRow&)>& sink) -> Status {
    GalleryRow a{{1, 1, 101, "u", "r"}, face::FaceTemplate{kModel, 1, std::vector<float>(kDim, 0.1f)}};
    FV_RETURN_IF_ERROR(sink(a));
    GalleryRow b{{2, 1, 101, "u", "r"}, face::FaceTemplate{kModel, 1, std::vector<float>(kDim + 1, 0.1f)}};
    return sink(b);
  };
  Status st = g.load(2, syn.totals(), bad);
  EXPECT_EQ(st.code(), StatusCode::kCorruptData);
  EXPECT_FALSE(g.loaded());
  EXPECT_EQ(g.size(), 0u);
  EXPECT_EQ(g.held(), 0u);
  // The source's own failure (a key that does not unwrap) is returned as is.
  st = g.load(3, syn.totals(), [](const std::function<Status(GalleryRow&)>&) { return io_error("disk"); });
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_FALSE(g.loaded());
}

TEST(Gallery, SearchRebuildsOnceWhenTheIndexFailsToReadItsRerankFile) {
  // A graph index re-ranks from a sealed scratch file; cut it and the search must rebuild
  // the gallery from its source (once) and answer.
  Synthetic syn(40);
  syn.faces_per_subject = 2;
  const auto dir = std::filesystem::temp_directory_path() / ("fv_gallery_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  GalleryOptions o;
  o.index_kind = "hnsw";
  o.store_dir = dir;
  Gallery g(o);
  ASSERT_TRUE(g.load(1, syn.totals(), syn.source()).is_ok());
  ASSERT_EQ(g.index_for(kModel, 1)->kind(), "hnsw");
  for (auto& f : std::filesystem::directory_iterator(dir)) std::filesystem::resize_file(f.path(), 0);
  int rebuilds = 0;
  auto rebuild = [&]() -> Status {
    ++rebuilds;
    return g.load(2, syn.totals(), syn.source());
  };
  auto hits = g.search(face::FaceTemplate{kModel, 1, syn.centers[7]}, 1, -2.0, nullptr, rebuild);
  if (rebuilds == 0) GTEST_SKIP() << "this index kind did not read its re-rank file for that search";
  ASSERT_TRUE(hits.is_ok()) << hits.status().to_string();
  EXPECT_EQ(rebuilds, 1);
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_TRUE(hits->count(8));
  EXPECT_EQ(g.generation(), 2);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace fv::service
